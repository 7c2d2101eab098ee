using System.Numerics;
using System.Text;
using Razorvine.Pickle;

namespace WinTok.Checkpoints.Pickle;

// The values TorchPickler writes beyond Razorvine's own (None, bool, int, float, str, tuple = object[],
// list = List<object?>, dict = IDictionary). TorchValueEncoder builds them from checkpoint values.

/// <summary>A bare global such as <c>torch.bfloat16</c> (a dtype) or <c>torch.FloatStorage</c>: one GLOBAL opcode.</summary>
internal sealed record PickledGlobal(string Module, string Name)
{
    public static readonly PickledGlobal OrderedDict = new("collections", "OrderedDict");
    public static readonly PickledGlobal RebuildTensorV2 = new("torch._utils", "_rebuild_tensor_v2");
    public static readonly PickledGlobal CodecsEncode = new("_codecs", "encode");
}

/// <summary><c>callable(*arguments)</c>: GLOBAL, the argument tuple, REDUCE (how torch pickles tensors).</summary>
/// <remarks>A class, not a record: the memo must treat two equal-looking calls as two objects.</remarks>
internal sealed class PickledCall(PickledGlobal callable, object?[] arguments)
{
    public PickledGlobal Callable { get; } = callable;

    public object?[] Arguments { get; } = arguments;
}

/// <summary>A <c>collections.OrderedDict</c>, as <c>state_dict()</c> returns: REDUCE with no arguments, then SETITEMS.</summary>
internal sealed class PickledOrderedDict(IReadOnlyList<KeyValuePair<object, object?>> items)
{
    public IReadOnlyList<KeyValuePair<object, object?>> Items { get; } = items;
}

/// <summary>An int beyond 32 bits. Razorvine writes those as text (INT), which torch's weights_only loader rejects.</summary>
internal sealed record PickledLong(BigInteger Value);

/// <summary>
/// A storage written as zip entry <c>data/&lt;Key&gt;</c> and referenced by the persistent id
/// <c>('storage', torch.&lt;Type&gt;, key, location, numel)</c>, exactly as <c>torch.save</c> does.
/// </summary>
internal sealed class StorageSlot(string key, PickledGlobal storageType, string location, long elementCount, TorchSharp.torch.Tensor source)
{
    public string Key { get; } = key;

    public PickledGlobal StorageType { get; } = storageType;

    public string Location { get; } = location;

    public long ElementCount { get; } = elementCount;

    /// <summary>The tensor whose contiguous bytes fill the entry; not owned.</summary>
    public TorchSharp.torch.Tensor Source { get; } = source;
}

/// <summary>
/// Razorvine's protocol-2 pickler (protocol 2 is torch.save's default) with the torch layer on top: storages become
/// persistent ids and the types above get their opcodes. Razorvine writes the scalars, containers and memo.
/// </summary>
/// <remarks>
/// Razorvine keeps custom picklers in a process-wide table keyed by .NET type; only this file's private types are
/// registered there, so no other pickling in the process changes.
/// </remarks>
internal sealed class TorchPickler : Pickler
{
    private const byte Mark = (byte)'(';
    private const byte Global = (byte)'c';
    private const byte EmptyTuple = (byte)')';
    private const byte Reduce = (byte)'R';
    private const byte SetItems = (byte)'u';
    private const byte Long1 = 0x8a;
    private const byte Long4 = 0x8b;

    // CPython's pickler batches SETITEMS by 1000 pairs; keeping that keeps every reader's stack small.
    private const int BatchSize = 1000;

    static TorchPickler()
    {
        registerCustomPickler(typeof(PickledGlobal), new GlobalPickler());
        registerCustomPickler(typeof(PickledCall), new CallPickler());
        registerCustomPickler(typeof(PickledOrderedDict), new OrderedDictPickler());
        registerCustomPickler(typeof(PickledLong), new LongPickler());
    }

    /// <summary>Pickles a value tree made by <see cref="TorchValueEncoder"/>.</summary>
    public static byte[] Pickle(object? root)
    {
        using var pickler = new TorchPickler();
        return pickler.dumps(root);
    }

    protected override bool persistentId(object pid, out object newpid)
    {
        if (pid is StorageSlot slot)
        {
            newpid = new object[] { "storage", slot.StorageType, slot.Key, slot.Location, TorchValueEncoder.Integer(slot.ElementCount) };
            return true;
        }
        newpid = null!;
        return false;
    }

    private static void WriteGlobal(Stream output, PickledGlobal global)
    {
        output.WriteByte(Global);
        output.Write(Encoding.UTF8.GetBytes($"{global.Module}\n{global.Name}\n"));
    }

    private sealed class GlobalPickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler) => WriteGlobal(outs, (PickledGlobal)o);
    }

    private sealed class CallPickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var call = (PickledCall)o;
            currentPickler.save(call.Callable);
            currentPickler.save(call.Arguments);
            outs.WriteByte(Reduce);
        }
    }

    private sealed class OrderedDictPickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            var dict = (PickledOrderedDict)o;
            currentPickler.save(PickledGlobal.OrderedDict);
            outs.WriteByte(EmptyTuple);
            outs.WriteByte(Reduce);
            foreach (var batch in dict.Items.Chunk(BatchSize))
            {
                outs.WriteByte(Mark);
                foreach (var (key, value) in batch)
                {
                    currentPickler.save(key);
                    currentPickler.save(value);
                }
                outs.WriteByte(SetItems);
            }
        }
    }

    private sealed class LongPickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            // pickle's encode_long: little-endian two's complement, as short as the sign allows; BigInteger agrees.
            byte[] bytes = ((PickledLong)o).Value.ToByteArray();
            if (bytes.Length <= byte.MaxValue)
            {
                outs.WriteByte(Long1);
                outs.WriteByte((byte)bytes.Length);
            }
            else
            {
                outs.WriteByte(Long4);
                Span<byte> length = stackalloc byte[4];
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
                outs.Write(length);
            }
            outs.Write(bytes);
        }
    }
}
