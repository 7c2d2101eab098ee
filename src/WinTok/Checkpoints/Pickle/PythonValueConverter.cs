using System.Globalization;

namespace WinTok.Checkpoints.Pickle;

/// <summary>
/// Turns unpickled values into the public checkpoint value model: int → long (BigInteger beyond 64 bits),
/// float → double, str → string, bool, None → null, bytes → byte[], dtype → "torch.bfloat16",
/// list/tuple/set → IReadOnlyList, dict → IReadOnlyDictionary with string keys, anything else → PythonObject.
/// </summary>
/// <remarks>
/// Pickles are graphs, not trees: a container can appear many times (converted once, then shared) or contain
/// itself (the inner reference becomes a placeholder). Without both, a crafted file could make the conversion
/// exponential or endless.
/// </remarks>
internal sealed class PythonValueConverter
{
    // Deeper values become placeholders, which keeps the recursion far from the thread's stack limit.
    private const int MaxDepth = 64;

    private readonly Dictionary<object, object?> converted = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<object> inProgress = new(ReferenceEqualityComparer.Instance);

    private PythonValueConverter()
    {
    }

    public static IReadOnlyDictionary<string, object?> ToDictionary(PyDict dict) =>
        (IReadOnlyDictionary<string, object?>)new PythonValueConverter().Convert(dict, 0)!;

    private object? Convert(object? value, int depth)
    {
        switch (value)
        {
            case null or bool or long or System.Numerics.BigInteger or double or string or byte[]:
                return value;
            case TorchDType dtype:
                return dtype.Name;
        }
        if (converted.TryGetValue(value, out object? done))
        {
            return done;
        }
        if (depth > MaxDepth)
        {
            return new PythonObject("<nested too deeply>", [], null);
        }
        if (!inProgress.Add(value))
        {
            return new PythonObject("<recursive reference>", [], null);
        }
        object? result = value switch
        {
            PyTuple tuple => tuple.Items.Select(item => Convert(item, depth + 1)).ToArray(),
            List<object?> list => list.Select(item => Convert(item, depth + 1)).ToArray(),
            PyDict dict => ConvertDict(dict, depth),
            PyInstance instance => new PythonObject(
                instance.TypeName,
                instance.Arguments.Select(argument => Convert(argument, depth + 1)).ToArray(),
                Convert(instance.State, depth + 1)),
            TensorReference tensor => new PythonObject("torch.Tensor", [], $"{tensor.Storage.Type.Name}{tensor.ShapeText}"),
            IPyCallable function => new PythonObject(function.QualifiedName, [], null),
            TorchStorageType storageType => new PythonObject(storageType.Name, [], null),
            _ => new PythonObject(value.GetType().Name, [], null),
        };
        inProgress.Remove(value);
        converted[value] = result;
        return result;
    }

    private IReadOnlyDictionary<string, object?> ConvertDict(PyDict dict, int depth)
    {
        var result = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in dict.Items)
        {
            result[KeyText(key)] = Convert(value, depth + 1);
        }
        return new System.Collections.ObjectModel.ReadOnlyDictionary<string, object?>(result);
    }

    /// <summary>Python dict keys as strings; non-string keys (optimizer state ids) use invariant formatting.</summary>
    internal static string KeyText(object? key) => key switch
    {
        string text => text,
        null => "None",
        bool flag => flag ? "True" : "False",
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => PickleReader.Describe(key),
    };
}
