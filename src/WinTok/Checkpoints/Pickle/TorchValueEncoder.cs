using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Checkpoints.Pickle;

/// <summary>
/// Marks a dictionary to be written as <c>collections.OrderedDict</c> rather than a dict, as the reference's args
/// (<c>Tap.state_dict()</c>) are.
/// </summary>
internal sealed record OrderedDictValue(IReadOnlyDictionary<string, object?> Items);

/// <summary>
/// Turns a checkpoint value tree into what <see cref="TorchPickler"/> writes, the way <c>torch.save</c> would pickle
/// the Python equivalent, and collects the tensors' storages in pickling order (their zip keys "0", "1", ...).
/// </summary>
/// <remarks>
/// The value model, by .NET type: null → None; bool; integer types and <see cref="BigInteger"/> → int; float and
/// double → float; string → str; byte[] → bytes; <see cref="ScalarType"/> → the dtype global (<c>torch.bfloat16</c>);
/// <see cref="Tensor"/> → a tensor (<c>_rebuild_tensor_v2</c> of a contiguous copy, any device);
/// <c>IReadOnlyDictionary&lt;string, Tensor&gt;</c> → a state_dict (<c>collections.OrderedDict</c>); any other
/// dictionary → dict (keys of the scalar types above); <see cref="ITuple"/> (value tuples) → tuple; any other
/// sequence → list. Anything else is refused with the path to it, never pickled by reflection.
/// </remarks>
internal sealed class TorchValueEncoder
{
    private static readonly Dictionary<ScalarType, (string DType, string Storage)> TorchNames = new()
    {
        [ScalarType.Float32] = ("float32", "FloatStorage"),
        [ScalarType.Float64] = ("float64", "DoubleStorage"),
        [ScalarType.Float16] = ("float16", "HalfStorage"),
        [ScalarType.BFloat16] = ("bfloat16", "BFloat16Storage"),
        [ScalarType.Int64] = ("int64", "LongStorage"),
        [ScalarType.Int32] = ("int32", "IntStorage"),
        [ScalarType.Int16] = ("int16", "ShortStorage"),
        [ScalarType.Int8] = ("int8", "CharStorage"),
        [ScalarType.Byte] = ("uint8", "ByteStorage"),
        [ScalarType.Bool] = ("bool", "BoolStorage"),
    };

    // The same Tensor object twice is one storage and one pickled tensor (the memo refers back), as in torch.save.
    private readonly Dictionary<Tensor, PickledCall> tensors = new(ReferenceEqualityComparer.Instance);
    private readonly List<StorageSlot> storages = [];

    /// <summary>The storages referenced by the encoded tree, in key order.</summary>
    public IReadOnlyList<StorageSlot> Storages => storages;

    /// <param name="where">How the caller names the value in errors, e.g. <c>checkpoint</c>.</param>
    public object? Encode(object? value, string where) => value switch
    {
        null => null,
        bool or string or double => value,
        float single => (double)single,
        sbyte or byte or short or ushort or int or uint or long => Integer(Convert.ToInt64(value, CultureInfo.InvariantCulture)),
        ulong or BigInteger => Integer(value is ulong unsigned ? unsigned : (BigInteger)value),
        byte[] bytes => EncodeBytes(bytes),
        ScalarType type => new PickledGlobal("torch", Names(type, where).DType),
        Tensor tensor => EncodeTensor(tensor, where),
        OrderedDictValue ordered => new PickledOrderedDict(ordered.Items
            .Select(pair => new KeyValuePair<object, object?>(pair.Key, Encode(pair.Value, $"{where}['{pair.Key}']")))
            .ToList()),
        IReadOnlyDictionary<string, Tensor> stateDict => new PickledOrderedDict(stateDict
            .Select(pair => new KeyValuePair<object, object?>(pair.Key, EncodeTensor(pair.Value, $"{where}['{pair.Key}']")))
            .ToList()),
        IDictionary dictionary => EncodeDictionary(dictionary, where),
        IEnumerable<KeyValuePair<string, object?>> pairs => EncodeDictionary(pairs.ToDictionary(pair => pair.Key, pair => pair.Value), where),
        ITuple tuple => Enumerable.Range(0, tuple.Length).Select(i => Encode(tuple[i], $"{where}[{i}]")).ToArray(),
        IEnumerable items => items.Cast<object?>().Select((item, i) => Encode(item, $"{where}[{i}]")).ToList(),
        _ => throw new ArgumentException($"{where} is a {value.GetType()}, which a PyTorch checkpoint cannot hold"),
    };

    /// <summary>Ints within 32 bits stay longs (Razorvine writes BININT*); wider ones are written as LONG1.</summary>
    internal static object Integer(BigInteger value) =>
        value >= int.MinValue && value <= int.MaxValue ? (long)value : new PickledLong(value);

    // Protocol 2 has no bytes opcode: Python 3 writes _codecs.encode(text, 'latin1'), each byte one character.
    private static PickledCall EncodeBytes(byte[] bytes) => new(PickledGlobal.CodecsEncode, [Encoding.Latin1.GetString(bytes), "latin1"]);

    private OrderedDictionary<object, object?> EncodeDictionary(IDictionary dictionary, string where)
    {
        var result = new OrderedDictionary<object, object?>();
        foreach (DictionaryEntry entry in dictionary)
        {
            string at = $"{where}[{(entry.Key is string text ? $"'{text}'" : entry.Key)}]";
            object key = entry.Key switch
            {
                string or bool => entry.Key,
                sbyte or byte or short or ushort or int or uint or long or ulong or BigInteger => Encode(entry.Key, at)!,
                _ => throw new ArgumentException($"{at} has a key of type {entry.Key.GetType()}; keys must be strings, integers or bools"),
            };
            result[key] = Encode(entry.Value, at);
        }
        return result;
    }

    private PickledCall EncodeTensor(Tensor tensor, string where)
    {
        if (tensors.TryGetValue(tensor, out var done))
        {
            return done;
        }
        if (tensor.IsInvalid)
        {
            throw new ArgumentException($"{where} is a disposed tensor");
        }
        var names = Names(tensor.dtype, where);
        string location = tensor.device_type switch
        {
            DeviceType.CPU => "cpu",
            DeviceType.CUDA => $"cuda:{Math.Max(0, tensor.device_index)}",
            _ => throw new ArgumentException($"{where} lives on {tensor.device}, which a checkpoint cannot name"),
        };
        var slot = new StorageSlot(storages.Count.ToString(CultureInfo.InvariantCulture), new PickledGlobal("torch", names.Storage), location, tensor.numel(), tensor);
        storages.Add(slot);

        // The storage is written as a contiguous copy, so the view is the whole storage in row-major order.
        long[] shape = tensor.shape;
        var stride = new long[shape.Length];
        long step = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            stride[i] = step;
            step *= Math.Max(1, shape[i]);
        }
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks): a state_dict holds
        // detached tensors, so requires_grad is False and there are no hooks.
        var call = new PickledCall(PickledGlobal.RebuildTensorV2,
        [
            slot, 0L, shape.Select(size => Integer(size)).ToArray(), stride.Select(size => Integer(size)).ToArray(), false,
            new PickledOrderedDict([]),
        ]);
        tensors[tensor] = call;
        return call;
    }

    private static (string DType, string Storage) Names(ScalarType type, string where) =>
        TorchNames.TryGetValue(type, out var names)
            ? names
            : throw new ArgumentException($"{where} has dtype {type}; a checkpoint can hold {string.Join(", ", TorchNames.Keys)}");
}
