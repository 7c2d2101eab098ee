using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace WinTok.Checkpoints.Pickle;

/// <summary>
/// A small unpickler for the opcodes <c>torch.save</c> emits (protocol 2 by default, 3-5 when asked), plus the
/// few protocol-0/1 container opcodes that cost nothing. It never imports or runs Python: globals and persistent
/// ids go to an <see cref="IPickleEnvironment"/>, which decides what they mean.
/// </summary>
/// <remarks>Opcode semantics follow CPython's <c>Lib/pickle.py</c> and <c>Lib/pickletools.py</c>.</remarks>
internal sealed class PickleReader
{
    private readonly byte[] data;
    private readonly string path;
    private readonly IPickleEnvironment environment;
    private readonly List<object?> stack = [];
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = [];
    private int position;

    private PickleReader(byte[] data, string path, IPickleEnvironment environment)
    {
        this.data = data;
        this.path = path;
        this.environment = environment;
    }

    /// <summary>Unpickles <paramref name="data"/>; <paramref name="path"/> only names the file in errors.</summary>
    public static object? Load(byte[] data, string path, IPickleEnvironment environment) =>
        new PickleReader(data, path, environment).Run();

    /// <summary>
    /// Unpickles the pickle that starts at <paramref name="position"/> and moves it past the STOP opcode, for files
    /// holding several pickles in a row (legacy torch.save).
    /// </summary>
    public static object? Load(byte[] data, ref int position, string path, IPickleEnvironment environment)
    {
        var reader = new PickleReader(data, path, environment) { position = position };
        object? value = reader.Run();
        position = reader.position;
        return value;
    }

    private object? Run()
    {
        while (true)
        {
            int at = position;
            byte opcode = ReadByte();
            switch (opcode)
            {
                case 0x80: // PROTO
                    byte protocol = ReadByte();
                    if (protocol > 5)
                    {
                        throw Fail($"pickle protocol {protocol} is newer than the supported 5");
                    }
                    break;
                case 0x95: // FRAME: only a length hint for buffered readers
                    ReadBytes(8);
                    break;
                case (byte)'.': // STOP
                    return Pop(at);

                case (byte)'(': // MARK
                    marks.Push(stack.Count);
                    break;
                case (byte)'0': // POP
                    Pop(at);
                    break;
                case (byte)'1': // POP_MARK
                    PopMark(at);
                    break;
                case (byte)'2': // DUP
                    Push(Peek(at));
                    break;

                case (byte)'N':
                    Push(null);
                    break;
                case 0x88: // NEWTRUE
                    Push(true);
                    break;
                case 0x89: // NEWFALSE
                    Push(false);
                    break;
                case (byte)'J': // BININT
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4)));
                    break;
                case (byte)'K': // BININT1
                    Push((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2)));
                    break;
                case 0x8a: // LONG1
                    Push(ReadLong(ReadByte()));
                    break;
                case 0x8b: // LONG4
                    Push(ReadLong(ReadLength(4, at)));
                    break;
                case (byte)'G': // BINFLOAT: big-endian IEEE double
                    Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8)));
                    break;

                case (byte)'X': // BINUNICODE
                    Push(ReadUtf8(ReadLength(4, at)));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(ReadUtf8(ReadByte()));
                    break;
                case 0x8d: // BINUNICODE8
                    Push(ReadUtf8(ReadLength(8, at)));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str): bytes, kept as Latin-1 text like pickle's default
                    Push(Encoding.Latin1.GetString(ReadBytes(ReadLength(4, at))));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    Push(Encoding.Latin1.GetString(ReadBytes(ReadByte())));
                    break;
                case (byte)'B': // BINBYTES
                    Push(ReadBytes(ReadLength(4, at)).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(ReadBytes(ReadByte()).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                case 0x96: // BYTEARRAY8
                    Push(ReadBytes(ReadLength(8, at)).ToArray());
                    break;

                case (byte)')': // EMPTY_TUPLE
                    Push(new PyTuple([]));
                    break;
                case 0x85: // TUPLE1
                    Push(new PyTuple(PopMany(1, at)));
                    break;
                case 0x86: // TUPLE2
                    Push(new PyTuple(PopMany(2, at)));
                    break;
                case 0x87: // TUPLE3
                    Push(new PyTuple(PopMany(3, at)));
                    break;
                case (byte)'t': // TUPLE
                    Push(new PyTuple(PopMark(at)));
                    break;
                case (byte)']': // EMPTY_LIST
                    Push(new List<object?>());
                    break;
                case (byte)'l': // LIST
                    Push(new List<object?>(PopMark(at)));
                    break;
                case (byte)'a': // APPEND
                    {
                        object? item = Pop(at);
                        Expect<List<object?>>(Peek(at), "APPEND", at).Add(item);
                        break;
                    }
                case (byte)'e': // APPENDS
                    {
                        object?[] items = PopMark(at);
                        Expect<List<object?>>(Peek(at), "APPENDS", at).AddRange(items);
                        break;
                    }
                case (byte)'}': // EMPTY_DICT
                    Push(new PyDict());
                    break;
                case (byte)'d': // DICT
                    {
                        var dict = new PyDict();
                        SetItems(dict, PopMark(at), at);
                        Push(dict);
                        break;
                    }
                case (byte)'s': // SETITEM
                    {
                        object? value = Pop(at);
                        object? key = Pop(at);
                        Expect<PyDict>(Peek(at), "SETITEM", at).Set(key, value);
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        object?[] items = PopMark(at);
                        SetItems(Expect<PyDict>(Peek(at), "SETITEMS", at), items, at);
                        break;
                    }
                case 0x8f: // EMPTY_SET: sets become lists, order as pickled
                    Push(new List<object?>());
                    break;
                case 0x90: // ADDITEMS
                    {
                        object?[] items = PopMark(at);
                        Expect<List<object?>>(Peek(at), "ADDITEMS", at).AddRange(items);
                        break;
                    }
                case 0x91: // FROZENSET
                    Push(new List<object?>(PopMark(at)));
                    break;

                case (byte)'q': // BINPUT
                    memo[ReadByte()] = Peek(at);
                    break;
                case (byte)'r': // LONG_BINPUT
                    memo[BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))] = Peek(at);
                    break;
                case 0x94: // MEMOIZE
                    memo[memo.Count] = Peek(at);
                    break;
                case (byte)'p': // PUT (protocol 0)
                    memo[ReadDecimalLine(at)] = Peek(at);
                    break;
                case (byte)'h': // BINGET
                    Push(GetMemo(ReadByte(), at));
                    break;
                case (byte)'j': // LONG_BINGET
                    Push(GetMemo(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)), at));
                    break;
                case (byte)'g': // GET (protocol 0)
                    Push(GetMemo(ReadDecimalLine(at), at));
                    break;

                case (byte)'c': // GLOBAL: "module\nname\n"
                    {
                        string module = ReadLine(at);
                        string name = ReadLine(at);
                        Push(environment.FindGlobal(module, name, at));
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        object? name = Pop(at);
                        object? module = Pop(at);
                        if (module is not string moduleName || name is not string globalName)
                        {
                            throw Fail($"STACK_GLOBAL at byte {at} expects two strings");
                        }
                        Push(environment.FindGlobal(moduleName, globalName, at));
                        break;
                    }
                case (byte)'Q': // BINPERSID
                    Push(environment.PersistentLoad(Pop(at)));
                    break;
                case (byte)'R': // REDUCE
                    {
                        var arguments = Expect<PyTuple>(Pop(at), "REDUCE arguments", at);
                        Push(Call(Pop(at), arguments.Items, at));
                        break;
                    }
                case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                    {
                        var arguments = Expect<PyTuple>(Pop(at), "NEWOBJ arguments", at);
                        Push(Call(Pop(at), arguments.Items, at));
                        break;
                    }
                case 0x92: // NEWOBJ_EX: keyword arguments are dropped; nothing torch.save writes uses them
                    {
                        Pop(at);
                        var arguments = Expect<PyTuple>(Pop(at), "NEWOBJ_EX arguments", at);
                        Push(Call(Pop(at), arguments.Items, at));
                        break;
                    }
                case (byte)'b': // BUILD: obj.__setstate__(state)
                    Build(Pop(at), Peek(at));
                    break;

                default:
                    throw Fail($"unsupported pickle opcode 0x{opcode:x2} at byte {at}");
            }
        }
    }

    private object? Call(object? callable, object?[] arguments, int at) => callable switch
    {
        IPyCallable function => function.Call(arguments),
        _ => throw Fail($"the pickle calls a {Describe(callable)} at byte {at}, which is not callable"),
    };

    private static void Build(object? state, object? target)
    {
        switch (target)
        {
            case PyInstance instance:
                instance.State = state;
                break;
            // A state_dict's OrderedDict carries `_metadata` (module versions) as instance state; the weights do not
            // depend on it, and other known values have no state worth keeping.
            default:
                break;
        }
    }

    private void SetItems(PyDict dict, object?[] items, int at)
    {
        if (items.Length % 2 != 0)
        {
            throw Fail($"SETITEMS at byte {at} has an odd number of items ({items.Length})");
        }
        for (int i = 0; i < items.Length; i += 2)
        {
            dict.Set(items[i], items[i + 1]);
        }
    }

    private object? GetMemo(long index, int at) =>
        memo.TryGetValue(index, out object? value) ? value : throw Fail($"memo entry {index} read at byte {at} was never stored");

    private T Expect<T>(object? value, string what, int at) where T : class =>
        value as T ?? throw Fail($"{what} at byte {at} expects a {typeof(T).Name} but found a {Describe(value)}");

    private void Push(object? value) => stack.Add(value);

    private object? Peek(int at) => stack.Count > (marks.Count > 0 ? marks.Peek() : 0)
        ? stack[^1]
        : throw Fail($"the pickle's stack is empty at byte {at}");

    private object? Pop(int at)
    {
        object? value = Peek(at);
        stack.RemoveAt(stack.Count - 1);
        return value;
    }

    private object?[] PopMany(int count, int at)
    {
        int floor = marks.Count > 0 ? marks.Peek() : 0;
        if (stack.Count - floor < count)
        {
            throw Fail($"the opcode at byte {at} needs {count} stack items, found {stack.Count - floor}");
        }
        object?[] items = stack.GetRange(stack.Count - count, count).ToArray();
        stack.RemoveRange(stack.Count - count, count);
        return items;
    }

    private object?[] PopMark(int at)
    {
        if (marks.Count == 0)
        {
            throw Fail($"the opcode at byte {at} needs a MARK, but none is open");
        }
        int start = marks.Pop();
        object?[] items = stack.GetRange(start, stack.Count - start).ToArray();
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    private byte ReadByte()
    {
        if (position >= data.Length)
        {
            throw Fail($"the pickle ends at byte {data.Length} before its STOP opcode (truncated?)");
        }
        return data[position++];
    }

    private ReadOnlySpan<byte> ReadBytes(long count)
    {
        if (count > data.Length - position)
        {
            throw Fail($"the pickle needs {count} bytes at byte {position} but has only {data.Length - position} left (truncated?)");
        }
        var span = data.AsSpan(position, (int)count);
        position += (int)count;
        return span;
    }

    private long ReadLength(int width, int at)
    {
        var bytes = ReadBytes(width);
        long length = width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(bytes) : BinaryPrimitives.ReadInt64LittleEndian(bytes);
        return length >= 0 ? length : throw Fail($"negative length {length} at byte {at}");
    }

    private string ReadUtf8(long length) => Encoding.UTF8.GetString(ReadBytes(length));

    private object ReadLong(long length)
    {
        // Little-endian two's complement; torch checkpoints rarely need more than a long.
        var value = new BigInteger(ReadBytes(length), isUnsigned: false, isBigEndian: false);
        if (value >= long.MinValue && value <= long.MaxValue)
        {
            return (long)value;
        }
        return value;
    }

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(data, (byte)'\n', position);
        if (end < 0)
        {
            throw Fail($"the text argument of the opcode at byte {at} has no end of line (truncated?)");
        }
        string line = Encoding.UTF8.GetString(data, position, end - position);
        position = end + 1;
        return line;
    }

    private long ReadDecimalLine(int at) =>
        long.TryParse(ReadLine(at), NumberStyles.Integer, CultureInfo.InvariantCulture, out long value)
            ? value
            : throw Fail($"the opcode at byte {at} has a malformed memo index");

    private CheckpointFormatException Fail(string problem) => new(path, problem);

    internal static string Describe(object? value) => value switch
    {
        null => "None",
        IPyCallable callable => callable.QualifiedName,
        PyInstance instance => $"{instance.TypeName} object",
        PyTuple => "tuple",
        PyDict => "dict",
        List<object?> => "list",
        string => "str",
        long or BigInteger => "int",
        double => "float",
        bool => "bool",
        byte[] => "bytes",
        _ => value.GetType().Name,
    };
}
