using System.Text.Json;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>Reads WinTok checkpoints in either container; writes them as safetensors or as <c>torch.save</c> files.</summary>
public static class CheckpointFile
{
    /// <summary>The safetensors metadata entry holding the args as JSON.</summary>
    public const string ArgsMetadataKey = "wintok.args";

    private static ReadOnlySpan<byte> ZipMagic => "PK\x03\x04"u8;

    private static ReadOnlySpan<byte> LegacyTorchMagic => [0x80, 0x02, 0x8a, 0x0a];

    /// <summary>
    /// Reads a checkpoint, detecting the format from its first bytes: a zip (<c>PK\x03\x04</c>) is a
    /// <c>torch.save</c> file, a pickled magic number a legacy (pre-1.6) <c>torch.save</c> file, anything else must be
    /// safetensors.
    /// </summary>
    /// <remarks>
    /// A .pth file yields <c>ckpt['trainer']['unitok']</c> and <c>ckpt['args']</c>, or, when the top level is itself a
    /// state_dict, that dict with empty args. A safetensors file yields all its tensors, and args from its
    /// <see cref="ArgsMetadataKey"/> metadata (empty if absent, as in the reference fixtures).
    /// </remarks>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="stateDictPath">
    /// For .pth files only: the keys leading to another state_dict, e.g. <c>Read(path, "trainer", "disc")</c> for the
    /// discriminator. A key also matches an integer key by its text, so <c>"state", "0"</c> reaches an optimizer's
    /// moments of parameter 0. Empty (the default) selects the model weights as described above.
    /// </param>
    /// <exception cref="CheckpointFormatException">The file is empty, truncated, corrupt or not a checkpoint.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static Checkpoint Read(string path, params string[] stateDictPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(stateDictPath);
        var (torchFile, legacy) = OpenTorch(path);
        using (var file = torchFile)
        {
            if (file is not null)
            {
                return legacy ? LegacyPthReader.Read(path, file, stateDictPath) : PthReader.Read(path, file, stateDictPath);
            }
        }
        if (!LooksLikeSafetensors(path))
        {
            throw new CheckpointFormatException(path,
                "it is not a torch.save checkpoint (a .pth is a zip archive starting with 'PK'), and not a safetensors file either");
        }
        if (stateDictPath.Length > 0)
        {
            throw new ArgumentException($"'{path}' is a safetensors file, which holds a single state_dict; a state_dict path applies only to .pth files", nameof(stateDictPath));
        }
        return ReadSafetensors(path);
    }

    /// <summary>
    /// Reads only a checkpoint's args, never a tensor: from a .pth file its pickle (<c>data.pkl</c>), from a
    /// safetensors file its JSON header. Learning a multi-gigabyte checkpoint's configuration this way costs
    /// milliseconds and a few megabytes.
    /// </summary>
    /// <returns>The args as <see cref="Checkpoint.Args"/> would hold them; empty if the file has none.</returns>
    /// <exception cref="CheckpointFormatException">The file is empty, corrupt or not a checkpoint.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static IReadOnlyDictionary<string, object?> ReadArgs(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (torchFile, legacy) = OpenTorch(path);
        using (var file = torchFile)
        {
            if (file is not null)
            {
                // Legacy (pre-1.6) files are plain weight files (torchvision, lpips); they carry no args.
                return legacy ? new Dictionary<string, object?>() : PthReader.ReadArgs(path, file);
            }
        }
        if (!LooksLikeSafetensors(path))
        {
            throw new CheckpointFormatException(path,
                "it is not a torch.save checkpoint (a .pth is a zip archive starting with 'PK'), and not a safetensors file either");
        }
        return ArgsFromMetadata(path, Safetensors.ReadMetadata(path));
    }

    /// <summary>
    /// Whether a file that is no torch.save file should be read as safetensors: yes unless it is named as a torch
    /// checkpoint (.pth, .pt) and does not open as safetensors does (a header length that fits the file, then a JSON
    /// object). A garbage .pth is then described as what it is not, rather than as a broken safetensors header.
    /// </summary>
    private static bool LooksLikeSafetensors(string path)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is not (".pth" or ".pt")) return true;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 16);
        Span<byte> head = stackalloc byte[9];
        if (file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) < head.Length) return false;
        var length = BitConverter.ToUInt64(head[..8]);
        return length >= 2 && length <= (ulong)(file.Length - 8) && head[8] == (byte)'{';
    }

    /// <summary>
    /// Whether a <c>torch.save</c> file holds a dict at <paramref name="stateDictPath"/> (e.g. <c>"trainer", "disc"</c>),
    /// read from its pickle alone; false for safetensors and legacy files.
    /// </summary>
    public static bool HasStateDict(string path, params string[] stateDictPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (torchFile, legacy) = OpenTorch(path);
        using var file = torchFile;
        if (file is null || legacy) return false;
        using var zip = PthReader.OpenZip(path, file);
        var (top, _) = PthReader.LoadPickle(path, zip);
        try
        {
            PthReader.FollowPath(path, top, stateDictPath);
            return true;
        }
        catch (CheckpointFormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads a whole training checkpoint in the reference layout (args, epoch, iter, the trainer's config, both
    /// state_dicts, both optimizer states and any extra top-level entries), for resuming a run. The result owns its
    /// tensors (CPU): dispose it.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not a <c>torch.save</c> zip or lacks <c>ckpt['trainer']</c>.</exception>
    public static TrainingCheckpoint ReadTraining(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (torchFile, legacy) = OpenTorch(path);
        using var file = torchFile;
        if (file is null || legacy)
            throw new CheckpointFormatException(path, "a training checkpoint is a torch.save zip file; this is " + (legacy ? "a legacy torch.save file" : "not one (safetensors?)"));
        return TrainingCheckpointReader.Read(path, file);
    }

    /// <summary>
    /// Opens <paramref name="path"/> and returns it positioned at 0 if it is a <c>torch.save</c> file (a zip, or a
    /// legacy bare pickle), or null (closed) if it must be safetensors.
    /// </summary>
    private static (FileStream? File, bool Legacy) OpenTorch(string path)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        try
        {
            if (file.Length == 0)
            {
                throw new CheckpointFormatException(path, "the file is empty");
            }
            Span<byte> magic = stackalloc byte[4];
            int read = file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
            if (read == magic.Length && magic.SequenceEqual(ZipMagic))
            {
                file.Position = 0;
                return (file, false);
            }
            // torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) wrote bare pickles that
            // open with PROTO 2 and a LONG1 of 10 bytes (its magic number). As a safetensors header length those
            // four bytes would mean ~177 MB, beyond the format's 100 MB limit, so no safetensors file starts so.
            if (read == magic.Length && magic.SequenceEqual(LegacyTorchMagic))
            {
                file.Position = 0;
                return (file, true);
            }
        }
        catch
        {
            file.Dispose();
            throw;
        }
        file.Dispose();
        return (null, false);
    }

    /// <summary>
    /// Writes <paramref name="stateDict"/> as safetensors, with <paramref name="args"/> as JSON in the
    /// <see cref="ArgsMetadataKey"/> metadata entry, so the file is a complete checkpoint. Tensors keep their dtype;
    /// the file is written beside <paramref name="path"/> and then renamed over it.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, object?> args, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stateDict);
        var metadata = new Dictionary<string, string> { [ArgsMetadataKey] = ArgsJson.Serialize(args) };
        Safetensors.Write(path, stateDict, metadata);
    }

    /// <summary>
    /// Writes <paramref name="checkpoint"/> as <c>torch.save</c> would (a zip of <c>archive/data.pkl</c> and raw
    /// storages), so that <c>torch.load</c> reads it, <c>weights_only=True</c> included. Tensors may live on any
    /// device and have any layout: each is written as a contiguous copy, and a tensor object that appears twice is
    /// stored once. The file is written beside <paramref name="path"/> and then renamed over it.
    /// </summary>
    /// <remarks>
    /// Values map to Python by .NET type: null → None; bool; integers (including <see cref="System.Numerics.BigInteger"/>)
    /// → int; float/double → float; string → str; byte[] → bytes; <see cref="ScalarType"/> → the dtype (for example
    /// <c>torch.bfloat16</c>); <see cref="Tensor"/> → tensor; <c>IReadOnlyDictionary&lt;string, Tensor&gt;</c> → a
    /// state_dict (<c>collections.OrderedDict</c>); any other dictionary → dict, keys being strings, integers or
    /// bools; value tuples → tuple; other sequences → list.
    /// </remarks>
    /// <exception cref="ArgumentException">A value has no Python equivalent; the message gives its path.</exception>
    public static void WritePyTorch(string path, IReadOnlyDictionary<string, object?> checkpoint)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(checkpoint);
        PthWriter.Write(path, checkpoint);
    }

    /// <summary>Writes a training checkpoint in the reference layout; see <see cref="TrainingCheckpoint"/>.</summary>
    public static void WritePyTorch(string path, TrainingCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        WritePyTorch(path, checkpoint.ToPickleTree());
    }

    private static Checkpoint ReadSafetensors(string path)
    {
        var (tensors, metadata) = Safetensors.Read(path);
        try
        {
            return new Checkpoint(path, CheckpointFileFormat.Safetensors, ArgsFromMetadata(path, metadata), tensors, metadata);
        }
        catch (CheckpointFormatException)
        {
            foreach (var tensor in tensors.Values)
            {
                tensor.Dispose();
            }
            throw;
        }
    }

    private static IReadOnlyDictionary<string, object?> ArgsFromMetadata(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(ArgsMetadataKey, out string? json))
        {
            return new Dictionary<string, object?>();
        }
        try
        {
            return ArgsJson.Deserialize(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"the '{ArgsMetadataKey}' metadata is not a JSON object: {e.Message}", e);
        }
    }
}
