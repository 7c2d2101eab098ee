using System.Text;
using TorchSharp;

namespace WinTok.Checkpoints.Pickle;

/// <summary>A <c>torch.dtype</c> global such as <c>torch.bfloat16</c>, as it appears in <c>args['dtype']</c>.</summary>
internal sealed record TorchDType(string Name);

/// <summary>A storage class global (<c>torch.FloatStorage</c>); <see cref="ScalarType"/> is null if unsupported.</summary>
internal sealed record TorchStorageType(string Name, torch.ScalarType? ScalarType);

/// <summary>
/// A storage named by a persistent id <c>('storage', storage_type, key, location, numel)</c>; its bytes live in
/// the zip entry <c>&lt;archive&gt;/data/&lt;key&gt;</c> and are read only if a selected tensor uses it.
/// </summary>
internal sealed record StorageReference(TorchStorageType Type, string Key, string Location, long ElementCount);

/// <summary>
/// A tensor as <c>torch._utils._rebuild_tensor_v2</c> describes it: a view (offset, size, stride, all in elements)
/// of a storage. Materialised later, so that unselected parts of a checkpoint (optimizer states) cost nothing.
/// </summary>
internal sealed record TensorReference(StorageReference Storage, long StorageOffset, long[] Size, long[] Stride)
{
    public string ShapeText => $"[{string.Join(", ", Size)}]";
}

/// <summary>
/// Gives torch.save's globals their meaning. Three kinds of global exist for this reader:
/// <list type="bullet">
/// <item>the allow-list, the only globals it constructs anything for: <c>collections.OrderedDict</c>,
/// <c>torch._utils._rebuild_tensor_v2</c>, <c>_rebuild_parameter</c>, <c>_rebuild_parameter_with_state</c>,
/// <c>torch.Size</c>, <c>builtins.set/frozenset/list/tuple</c> (also as <c>__builtin__</c>), <c>_codecs.encode</c>,
/// the storage classes (<c>torch.FloatStorage</c>, ...) and dtypes (<c>torch.bfloat16</c>, ...);</item>
/// <item>refused globals: every module that runs code, starts processes or reaches files and the network
/// (<see cref="RefusedModules"/>) and every builtin outside <see cref="InertBuiltins"/>. A checkpoint never needs
/// them, so naming one fails the whole read at once;</item>
/// <item>everything else (a config class or a <c>pathlib</c> path in <c>args</c>) becomes an inert placeholder that
/// records the call; whether that is an error depends on where it ends up (fine in <c>args</c>, fatal where a
/// tensor is expected). No Python and no .NET type named by the pickle is ever instantiated.</item>
/// </list>
/// </summary>
internal sealed class TorchPickleEnvironment(string path) : IPickleEnvironment
{
    private readonly Dictionary<string, StorageReference> storages = new(StringComparer.Ordinal);

    private static readonly Dictionary<string, torch.ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = torch.ScalarType.Float32,
        ["DoubleStorage"] = torch.ScalarType.Float64,
        ["HalfStorage"] = torch.ScalarType.Float16,
        ["BFloat16Storage"] = torch.ScalarType.BFloat16,
        ["LongStorage"] = torch.ScalarType.Int64,
        ["IntStorage"] = torch.ScalarType.Int32,
        ["ShortStorage"] = torch.ScalarType.Int16,
        ["CharStorage"] = torch.ScalarType.Int8,
        ["ByteStorage"] = torch.ScalarType.Byte,
        ["BoolStorage"] = torch.ScalarType.Bool,
    };

    private static readonly HashSet<string> DTypes =
    [
        "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "bool", "complex64", "complex128", "uint16", "uint32", "uint64",
        "float8_e4m3fn", "float8_e5m2",
    ];

    // The modules torch's own weights_only unpickler blocks outright (sys, os, posix, nt), and the other standard
    // modules whose functions execute code, spawn processes, open files or sockets, or call arbitrary attributes.
    private static readonly HashSet<string> RefusedModules =
    [
        "os", "posix", "nt", "sys", "subprocess", "pty", "shutil", "tempfile", "glob", "io", "_io", "socket",
        "ssl", "urllib", "http", "ftplib", "smtplib", "webbrowser", "importlib", "pkgutil", "runpy", "code",
        "codeop", "pdb", "bdb", "inspect", "pydoc", "timeit", "ctypes", "marshal", "pickle", "_pickle", "shelve",
        "dill", "cloudpickle", "types", "functools", "operator", "signal", "threading", "_thread",
        "multiprocessing", "concurrent", "asyncio", "platform", "commands", "popen2", "nturl2path",
    ];

    // Builtins that are plain value types: a placeholder for them is harmless. Every other builtin (eval, exec,
    // getattr, open, __import__, compile, ...) is refused.
    private static readonly HashSet<string> InertBuiltins =
    [
        "set", "frozenset", "list", "tuple", "dict", "bytearray", "bytes", "object", "complex", "slice", "range",
        "int", "float", "str", "bool",
    ];

    public object FindGlobal(string module, string name, int at)
    {
        if (IsRefused(module, name))
        {
            throw new CheckpointFormatException(path,
                $"the pickle names the global {module}.{name} (byte {at}), which can run code or reach the system; " +
                "no checkpoint needs it, so the file is refused without constructing anything");
        }
        return Resolve(module, name);
    }

    internal static bool IsRefused(string module, string name)
    {
        if (module is "builtins" or "__builtin__")
        {
            return !InertBuiltins.Contains(name);
        }
        int dot = module.IndexOf('.');
        return RefusedModules.Contains(dot < 0 ? module : module[..dot]);
    }

    private object Resolve(string module, string name) => (module, name) switch
    {
        ("collections", "OrderedDict") => new Function("collections.OrderedDict", NewOrderedDict),
        // Protocol 2 has no bytes opcode: Python 3 pickles bytes as _codecs.encode(text, 'latin1').
        ("_codecs", "encode") => new Function("_codecs.encode", EncodeBytes),
        ("torch._utils", "_rebuild_tensor_v2") => new Function("torch._utils._rebuild_tensor_v2", RebuildTensor),
        // torch < 0.4 (legacy files such as old torchvision weights): _rebuild_tensor(storage, offset, size, stride).
        ("torch._utils", "_rebuild_tensor") => new Function("torch._utils._rebuild_tensor", RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => new Function("torch._utils._rebuild_parameter", RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") =>
            new Function("torch._utils._rebuild_parameter_with_state", RebuildParameter),
        // torch.Size (a tuple) and protocol 2's set(list) are plain sequences to C#. Protocols < 3 name the
        // builtins module by its Python 2 name, __builtin__.
        ("torch", "Size") or ("builtins" or "__builtin__", "set" or "frozenset" or "list" or "tuple") =>
            new Function($"{module}.{name}", arguments => arguments is [var items] ? items : new PyTuple([])),
        // Legacy files saved from the GPU by torch < 0.4 name the storage class torch.cuda.FloatStorage; the bytes are the same.
        ("torch" or "torch.cuda", _) when StorageTypes.TryGetValue(name, out var type) => new TorchStorageType($"{module}.{name}", type),
        ("torch" or "torch.cuda", _) when name.EndsWith("Storage", StringComparison.Ordinal) => new TorchStorageType($"{module}.{name}", null),
        ("torch", _) when DTypes.Contains(name) => new TorchDType($"torch.{name}"),
        _ => new PyUnknownGlobal($"{module}.{name}"),
    };

    public object? PersistentLoad(object? persistentId)
    {
        // torch.save: ('storage', storage_type, key, location, numel); anything else is not a torch zip checkpoint.
        // Legacy (non-zip) files add a sixth item, view_metadata: None unless the pickled object was a slice of a
        // storage (the storage-view API of torch < 1.0), which state_dicts never hold.
        if (persistentId is PyTuple { Items: ["storage", _, string viewed, _, _, not null] })
        {
            throw new CheckpointFormatException(path, $"storage '{viewed}' is pickled as a view of another storage, which this reader does not support");
        }
        if (persistentId is not PyTuple { Items: ["storage", var type, string key, var location, long count, ..] tuple }
            || tuple.Length > 6 || (tuple.Length == 6 && tuple[5] is not null))
        {
            throw new CheckpointFormatException(path, "a persistent id is not of the form ('storage', type, key, location, numel)");
        }
        if (type is not TorchStorageType storageType)
        {
            throw new CheckpointFormatException(path, $"storage '{key}' has type {PickleReader.Describe(type)}, which is not a torch storage class");
        }
        var reference = new StorageReference(storageType, key, location as string ?? "?", count);
        storages.TryAdd(key, reference);
        return reference;
    }

    /// <summary>Every storage the pickle referred to, by key (the first reference of each).</summary>
    public IReadOnlyDictionary<string, StorageReference> Storages => storages;

    private static object? NewOrderedDict(IReadOnlyList<object?> arguments)
    {
        var dict = new PyDict();
        // OrderedDict(iterable_of_pairs): Python 3's torch.save reduces with no arguments, but Python 2 pickled an
        // OrderedDict as OrderedDict([[key, value], ...]) (legacy files such as the lpips v0.1 heads).
        if (arguments is [List<object?> pairs])
        {
            foreach (object? pair in pairs)
            {
                object?[]? items = pair switch
                {
                    PyTuple tuple => tuple.Items,
                    List<object?> list => [.. list],
                    _ => null,
                };
                if (items is [var key, var value])
                {
                    dict.Set(key, value);
                }
            }
        }
        return dict;
    }

    private object? EncodeBytes(IReadOnlyList<object?> arguments) => arguments switch
    {
        [string text, "latin1" or "latin-1"] => Encoding.Latin1.GetBytes(text),
        [string text, "utf-8" or "utf8"] => Encoding.UTF8.GetBytes(text),
        [string text] => Encoding.UTF8.GetBytes(text),
        _ => throw new CheckpointFormatException(path, "_codecs.encode is called with arguments other than (str, encoding)"),
    };

    private object? RebuildTensor(IReadOnlyList<object?> arguments)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None);
        // the legacy _rebuild_tensor takes the first four.
        if (arguments.Count < 4)
        {
            throw new CheckpointFormatException(path, $"_rebuild_tensor_v2 got {arguments.Count} arguments, expected at least 4");
        }
        if (arguments[0] is not StorageReference storage)
        {
            throw new CheckpointFormatException(path, $"_rebuild_tensor_v2's storage is a {PickleReader.Describe(arguments[0])}, not a storage");
        }
        if (arguments[1] is not long offset || ToLongs(arguments[2]) is not { } size || ToLongs(arguments[3]) is not { } stride
            || size.Length != stride.Length)
        {
            throw new CheckpointFormatException(path, $"_rebuild_tensor_v2 for storage '{storage.Key}' has a malformed offset, size or stride");
        }
        return new TensorReference(storage, offset, size, stride);
    }

    private object? RebuildParameter(IReadOnlyList<object?> arguments)
    {
        // _rebuild_parameter(data, requires_grad, backward_hooks[, state]): the weights are `data`.
        if (arguments.Count == 0 || arguments[0] is not TensorReference tensor)
        {
            throw new CheckpointFormatException(path,
                $"_rebuild_parameter expects a tensor, got {(arguments.Count == 0 ? "nothing" : PickleReader.Describe(arguments[0]))}");
        }
        return tensor;
    }

    private static long[]? ToLongs(object? value)
    {
        object?[]? items = value switch
        {
            PyTuple tuple => tuple.Items,
            List<object?> list => [.. list],
            _ => null,
        };
        if (items is null || items.Any(item => item is not long))
        {
            return null;
        }
        return items.Select(item => (long)item!).ToArray();
    }

    private sealed class Function(string qualifiedName, Func<IReadOnlyList<object?>, object?> body) : IPyCallable
    {
        public string QualifiedName { get; } = qualifiedName;

        public object? Call(IReadOnlyList<object?> arguments) => body(arguments);
    }
}
