namespace WinTok.Checkpoints.Pickle;

// The unpickler's in-memory model of Python values. Scalars use plain .NET types (long, BigInteger, double,
// string, bool, byte[], null); containers and objects use the types below. Public checkpoint values are made
// from these by PythonValueConverter, so the mutable shapes never leak out of the reader.

/// <summary>A Python dict (or OrderedDict): insertion-ordered, keys of any hashable Python value.</summary>
internal sealed class PyDict
{
    // None cannot be a .NET dictionary key; it stands in for a Python None key.
    private static readonly object NoneKey = new();

    private readonly OrderedDictionary<object, object?> items = [];

    public int Count => items.Count;

    public IEnumerable<KeyValuePair<object?, object?>> Items =>
        items.Select(pair => new KeyValuePair<object?, object?>(ReferenceEquals(pair.Key, NoneKey) ? null : pair.Key, pair.Value));

    public void Set(object? key, object? value) => items[key ?? NoneKey] = value;

    public bool TryGet(object? key, out object? value) => items.TryGetValue(key ?? NoneKey, out value);
}

/// <summary>A Python tuple; lists are <see cref="List{T}"/> because APPEND mutates them.</summary>
internal sealed class PyTuple(object?[] items)
{
    public object?[] Items { get; } = items;
}

/// <summary>Something the unpickler can call through REDUCE or NEWOBJ.</summary>
internal interface IPyCallable
{
    string QualifiedName { get; }

    object? Call(IReadOnlyList<object?> arguments);
}

/// <summary>An instance of a class the reader does not model; BUILD fills <see cref="State"/>.</summary>
internal sealed class PyInstance(string typeName, IReadOnlyList<object?> arguments)
{
    public string TypeName { get; } = typeName;

    public IReadOnlyList<object?> Arguments { get; } = arguments;

    public object? State { get; set; }
}

/// <summary>A global the reader does not know: calling it records the call instead of running anything.</summary>
internal sealed class PyUnknownGlobal(string qualifiedName) : IPyCallable
{
    public string QualifiedName { get; } = qualifiedName;

    public object? Call(IReadOnlyList<object?> arguments) => new PyInstance(QualifiedName, arguments);
}

/// <summary>Resolves what a pickle refers to outside itself: globals by name and persistent ids.</summary>
internal interface IPickleEnvironment
{
    /// <param name="at">The byte offset of the opcode naming the global, for error messages.</param>
    object FindGlobal(string module, string name, int at);

    object? PersistentLoad(object? persistentId);
}
