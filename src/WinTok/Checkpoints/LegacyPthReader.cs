using System.Numerics;
using WinTok.Checkpoints.Pickle;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Reads a legacy (pre-1.6, non-zip) <c>torch.save</c> file, the format of older published weights: torchvision's
/// AlexNet and VGG16, the lpips v0.1 heads, the pytorch-fid Inception. Per torch/serialization.py (<c>_legacy_save</c>,
/// <c>_legacy_load</c>) the file is five pickles in a row (the magic number 0x1950a86a20f9469cfc6c, the protocol
/// version 1001, a sys_info dict, the object, the list of storage keys in write order), followed, for each key of that
/// list, by the storage's element count (int64, little-endian) and its raw little-endian bytes.
/// </summary>
/// <remarks>
/// The pickles are small, so only the start of the file is read to parse them (growing the window if a large pickle
/// needs more); the storages are then read from their offsets, and only those the selected state_dict uses.
/// </remarks>
internal static class LegacyPthReader
{
    private const int ProtocolVersion = 1001;

    private const int FirstWindowBytes = 1 << 20;

    private static readonly BigInteger MagicNumber = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);

    public static Checkpoint Read(string path, FileStream file, IReadOnlyList<string> stateDictPath)
    {
        var environment = new TorchPickleEnvironment(path);
        var (root, storageKeys, dataStart) = ReadPickles(path, file, environment);
        if (root is not PyDict top)
        {
            throw Fail(path, $"the pickled object is a {PickleReader.Describe(root)}, expected a dict");
        }
        var offsets = StorageOffsets(path, file, environment, storageKeys, dataStart);
        var stateDict = stateDictPath.Count == 0 ? PthReader.SelectStateDict(path, top) : PthReader.FollowPath(path, top, stateDictPath);
        var args = ReferenceEquals(stateDict, top) ? new Dictionary<string, object?>() : PthReader.SelectArgs(top);
        var tensors = new TensorMaterializer(path, (name, reference, type) =>
        {
            if (!offsets.TryGetValue(reference.Key, out long offset))
            {
                throw Fail(path, $"tensor '{name}' needs storage '{reference.Key}', which the file's storage list does not name");
            }
            var tensor = torch.empty([reference.ElementCount], type);
            file.Position = offset;
            TensorBytes.Fill(tensor, file);
            return tensor;
        }).Materialize(stateDict);
        return new Checkpoint(path, CheckpointFileFormat.PyTorch, args, tensors, new Dictionary<string, string>());
    }

    private static (object? Root, List<string> StorageKeys, long DataStart) ReadPickles(string path, FileStream file, TorchPickleEnvironment environment)
    {
        for (long window = Math.Min(FirstWindowBytes, file.Length); ; window = Math.Min(window * 4, file.Length))
        {
            if (window > Array.MaxLength)
            {
                throw Fail(path, "its pickles do not end within the first 2 GB");
            }
            var bytes = new byte[window];
            file.Position = 0;
            file.ReadExactly(bytes);
            try
            {
                int position = 0;
                CheckHeader(path, bytes, ref position);
                object? root = PickleReader.Load(bytes, ref position, path, environment);
                object? keys = PickleReader.Load(bytes, ref position, path, environment);
                if (keys is not List<object?> list || list.Any(key => key is not string))
                {
                    throw Fail(path, $"its storage key list is a {PickleReader.Describe(keys)}, not a list of strings");
                }
                return (root, list.Cast<string>().ToList(), position);
            }
            catch (CheckpointFormatException e)
            {
                if (window < file.Length)
                {
                    continue; // a pickle ran past the window (or the window cut it into garbage): read more, parse again
                }
                throw e.Problem.StartsWith(Prefix, StringComparison.Ordinal) ? e : new CheckpointFormatException(path, Prefix + e.Problem, e);
            }
        }
    }

    private static void CheckHeader(string path, byte[] bytes, ref int position)
    {
        var ignoreGlobals = new TorchPickleEnvironment(path);
        if (PickleReader.Load(bytes, ref position, path, ignoreGlobals) is not BigInteger magic || magic != MagicNumber)
        {
            throw Fail(path, "it does not start with torch's magic number");
        }
        if (PickleReader.Load(bytes, ref position, path, ignoreGlobals) is not (long)ProtocolVersion)
        {
            throw Fail(path, $"its protocol version is not {ProtocolVersion}");
        }
        // sys_info: {'protocol_version': 1001, 'little_endian': bool, 'type_sizes': {...}}
        if (PickleReader.Load(bytes, ref position, path, ignoreGlobals) is PyDict info
            && info.TryGet("little_endian", out object? littleEndian) && littleEndian is false)
        {
            throw Fail(path, "it was written big-endian; only little-endian files are supported");
        }
    }

    private static Dictionary<string, long> StorageOffsets(string path, FileStream file, TorchPickleEnvironment environment, List<string> keys, long dataStart)
    {
        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        Span<byte> countBytes = stackalloc byte[8];
        long position = dataStart;
        foreach (string key in keys)
        {
            if (!environment.Storages.TryGetValue(key, out var reference) || reference.Type.ScalarType is not { } type)
            {
                throw Fail(path, $"storage '{key}' is listed but its type is unknown (never referenced, or unsupported)");
            }
            if (position + 8 > file.Length)
            {
                throw Fail(path, $"the file ends at byte {file.Length}, before storage '{key}' (truncated?)");
            }
            file.Position = position;
            file.ReadExactly(countBytes);
            long count = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(countBytes);
            long elementSize = TensorBytes.ElementSize(type);
            if (count != reference.ElementCount || count < 0 || count > (file.Length - position - 8) / elementSize)
            {
                throw Fail(path, $"storage '{key}' records {count} elements of {type} at byte {position}; the pickle says {reference.ElementCount} and the file has {file.Length - position - 8} bytes left (truncated?)");
            }
            offsets[key] = position + 8;
            position += 8 + count * elementSize;
        }
        return offsets;
    }

    private const string Prefix = "legacy (non-zip) torch.save file: ";

    private static CheckpointFormatException Fail(string path, string problem) => new(path, Prefix + problem);
}
