using System.IO.Compression;
using System.Text;
using TorchSharp;
using WinTok.Checkpoints.Pickle;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Reads a <c>torch.save</c> zip checkpoint (PyTorch ≥ 1.6 format): <c>&lt;archive&gt;/data.pkl</c> holds the pickled
/// object tree, each storage is the raw little-endian entry <c>&lt;archive&gt;/data/&lt;key&gt;</c>.
/// </summary>
/// <remarks>
/// Only the selected state_dict's storages are read, so optimizer states and discriminators in a training
/// checkpoint cost nothing but their pickle. Storages shared by several views are read once.
/// </remarks>
internal static class PthReader
{
    /// <param name="stateDictPath">Keys leading to the state_dict, e.g. ["trainer", "disc"]; empty selects
    /// ckpt['trainer']['unitok'] or a top-level state_dict.</param>
    public static Checkpoint Read(string path, Stream file, IReadOnlyList<string> stateDictPath)
    {
        using var zip = OpenZip(path, file);
        var (top, prefix) = LoadPickle(path, zip);
        var stateDict = stateDictPath.Count == 0 ? SelectStateDict(path, top) : FollowPath(path, top, stateDictPath);
        var args = ReferenceEquals(stateDict, top) ? new Dictionary<string, object?>() : SelectArgs(top);
        var tensors = new TensorMaterializer(path, ZipStorages(path, zip, prefix)).Materialize(stateDict);
        return new Checkpoint(path, CheckpointFileFormat.PyTorch, args, tensors, new Dictionary<string, string>());
    }

    /// <summary>Returns <c>ckpt['args']</c> from data.pkl alone: no storage entry is opened, however large the file.</summary>
    public static IReadOnlyDictionary<string, object?> ReadArgs(string path, Stream file)
    {
        using var zip = OpenZip(path, file);
        return SelectArgs(LoadPickle(path, zip).Top);
    }

    internal static ZipArchive OpenZip(string path, Stream file)
    {
        try
        {
            return new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointFormatException(path, $"the zip directory is unreadable (truncated or corrupt file): {e.Message}", e);
        }
    }

    /// <summary>Unpickles <c>&lt;archive&gt;/data.pkl</c>; storages stay references into the zip.</summary>
    internal static (PyDict Top, string Prefix) LoadPickle(string path, ZipArchive zip)
    {
        var pickleEntry = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
            ?? zip.GetEntry("data.pkl")
            ?? throw new CheckpointFormatException(path, "the zip has no data.pkl entry, so it is not a torch.save checkpoint");
        string prefix = pickleEntry.FullName[..^"data.pkl".Length];
        CheckByteOrder(path, zip, prefix);

        object? root = PickleReader.Load(ReadEntry(path, pickleEntry), path, new TorchPickleEnvironment(path));
        if (root is not PyDict top)
        {
            throw new CheckpointFormatException(path, $"the pickled object is a {PickleReader.Describe(root)}, expected a dict");
        }
        return (top, prefix);
    }

    private static void CheckByteOrder(string path, ZipArchive zip, string prefix)
    {
        // Files from before torch 1.10 have no byteorder entry; they were written little-endian.
        if (zip.GetEntry(prefix + "byteorder") is { } entry)
        {
            string order = Encoding.ASCII.GetString(ReadEntry(path, entry)).Trim();
            if (order != "little")
            {
                throw new CheckpointFormatException(path, $"storages are stored '{order}'-endian; only little-endian is supported");
            }
        }
    }

    internal static PyDict SelectStateDict(string path, PyDict top)
    {
        // The official layout: ckpt['trainer']['unitok'].
        if (top.TryGet("trainer", out object? trainer) && trainer is PyDict trainerDict
            && trainerDict.TryGet("unitok", out object? unitok) && unitok is PyDict weights)
        {
            return weights;
        }
        // A bare state_dict: every value is a tensor, or something a torch rebuild function made (a quantized or
        // sparse tensor), which Materialize then reports by its function's name.
        if (top.Count > 0 && top.Items.All(pair => pair.Value is TensorReference
            || pair.Value is PyInstance instance && instance.TypeName.StartsWith("torch.", StringComparison.Ordinal)))
        {
            return top;
        }
        string keys = string.Join(", ", top.Items.Take(20).Select(pair => PythonValueConverter.KeyText(pair.Key)));
        throw new CheckpointFormatException(path,
            $"found no state_dict: expected ckpt['trainer']['unitok'] or a top-level dict of tensors, but the top-level keys are [{keys}]");
    }

    internal static PyDict FollowPath(string path, PyDict top, IReadOnlyList<string> keys)
    {
        var current = top;
        for (int i = 0; i < keys.Count; i++)
        {
            string where = "ckpt" + string.Concat(keys.Take(i).Select(key => $"['{key}']"));
            if (!current.TryGet(keys[i], out object? next) && !TryGetByKeyText(current, keys[i], out next))
            {
                string available = string.Join(", ", current.Items.Take(20).Select(pair => PythonValueConverter.KeyText(pair.Key)));
                throw new CheckpointFormatException(path, $"{where} has no key '{keys[i]}'; its keys are [{available}]");
            }
            current = next as PyDict
                ?? throw new CheckpointFormatException(path, $"{where}['{keys[i]}'] is a {PickleReader.Describe(next)}, not a dict of tensors");
        }
        return current;
    }

    /// <summary>Finds a non-string key by its text, so that <c>"0"</c> selects an optimizer's <c>state[0]</c>.</summary>
    private static bool TryGetByKeyText(PyDict dict, string key, out object? value)
    {
        foreach (var (candidate, item) in dict.Items)
        {
            if (candidate is not string && PythonValueConverter.KeyText(candidate) == key)
            {
                value = item;
                return true;
            }
        }
        value = null;
        return false;
    }

    internal static IReadOnlyDictionary<string, object?> SelectArgs(PyDict top)
    {
        if (!top.TryGet("args", out object? args))
        {
            return new Dictionary<string, object?>();
        }
        return args switch
        {
            PyDict dict => PythonValueConverter.ToDictionary(dict),
            // An argparse.Namespace or tap.Tap object pickles as an instance whose state is its __dict__.
            PyInstance { State: PyDict state } => PythonValueConverter.ToDictionary(state),
            _ => new Dictionary<string, object?>(),
        };
    }

    internal static byte[] ReadEntry(string path, ZipArchiveEntry entry)
    {
        try
        {
            // data.pkl and the small text entries are read whole; a length beyond an array means a corrupt directory.
            if (entry.Length > Array.MaxLength)
            {
                throw new CheckpointFormatException(path, $"zip entry '{entry.FullName}' claims {entry.Length} bytes, more than a pickle can be");
            }
            using var stream = entry.Open();
            var bytes = new byte[entry.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new CheckpointFormatException(path, $"zip entry '{entry.FullName}' is unreadable (truncated or corrupt file): {e.Message}", e);
        }
    }

    /// <summary>Reads storage entries <c>&lt;archive&gt;/data/&lt;key&gt;</c> of the zip for <see cref="TensorMaterializer"/>.</summary>
    internal static TensorMaterializer.StorageSource ZipStorages(string path, ZipArchive zip, string prefix) => (name, reference, type) =>
    {
        string entryName = prefix + "data/" + reference.Key;
        var entry = zip.GetEntry(entryName)
            ?? throw new CheckpointFormatException(path, $"tensor '{name}' needs storage entry '{entryName}', which the zip does not contain");
        long elementSize = TensorBytes.ElementSize(type);
        if (reference.ElementCount < 0 || reference.ElementCount > long.MaxValue / elementSize
            || entry.Length < reference.ElementCount * elementSize)
        {
            throw new CheckpointFormatException(path,
                $"storage entry '{entryName}' has {entry.Length} bytes, but tensor '{name}' needs {reference.ElementCount} elements of {type}");
        }
        var tensor = torch.empty([reference.ElementCount], type);
        try
        {
            using var stream = entry.Open();
            TensorBytes.Fill(tensor, stream);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new CheckpointFormatException(path, $"storage entry '{entryName}' is unreadable (truncated or corrupt file): {e.Message}", e);
        }
        return tensor;
    };
}
