using System.Globalization;

namespace WinTok.Checkpoints.Pickle;

/// <summary>
/// Turns unpickled values into the public checkpoint value model: int → long (BigInteger beyond 64 bits),
/// float → double, str → string, bool, None → null, bytes → byte[], dtype → "torch.bfloat16",
/// list/tuple/set → IReadOnlyList, dict → IReadOnlyDictionary with string keys, anything else → PythonObject.
/// </summary>
internal static class PythonValueConverter
{
    // Pickles can describe cycles (a list containing itself); past this depth the value becomes a placeholder.
    private const int MaxDepth = 64;

    public static IReadOnlyDictionary<string, object?> ToDictionary(PyDict dict) => ConvertDict(dict, 0);

    public static object? Convert(object? value) => Convert(value, 0);

    private static object? Convert(object? value, int depth)
    {
        if (depth > MaxDepth)
        {
            return new PythonObject("<nested too deeply>", [], null);
        }
        return value switch
        {
            null or bool or long or System.Numerics.BigInteger or double or string or byte[] => value,
            TorchDType dtype => dtype.Name,
            PyTuple tuple => tuple.Items.Select(item => Convert(item, depth + 1)).ToArray(),
            List<object?> list => list.Select(item => Convert(item, depth + 1)).ToArray(),
            PyDict dict => ConvertDict(dict, depth + 1),
            PyInstance instance => new PythonObject(
                instance.TypeName,
                instance.Arguments.Select(argument => Convert(argument, depth + 1)).ToArray(),
                Convert(instance.State, depth + 1)),
            TensorReference tensor => new PythonObject("torch.Tensor", [], $"{tensor.Storage.Type.Name}{tensor.ShapeText}"),
            IPyCallable function => new PythonObject(function.QualifiedName, [], null),
            TorchStorageType storageType => new PythonObject(storageType.Name, [], null),
            _ => new PythonObject(value.GetType().Name, [], null),
        };
    }

    private static IReadOnlyDictionary<string, object?> ConvertDict(PyDict dict, int depth)
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
