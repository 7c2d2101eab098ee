using System.Text.Json;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>Reads WinTok checkpoints in either container and writes them as safetensors.</summary>
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
    /// discriminator. Empty (the default) selects the model weights as described above.
    /// </param>
    /// <exception cref="CheckpointFormatException">The file is empty, truncated, corrupt or not a checkpoint.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static Checkpoint Read(string path, params string[] stateDictPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(stateDictPath);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16))
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
                return PthReader.Read(path, file, stateDictPath);
            }
            // torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) wrote bare pickles that
            // open with PROTO 2 and a LONG1 of 10 bytes (its magic number). As a safetensors header length those
            // four bytes would mean ~177 MB, beyond the format's 100 MB limit, so no safetensors file starts so.
            if (read == magic.Length && magic.SequenceEqual(LegacyTorchMagic))
            {
                return LegacyPthReader.Read(path, file, stateDictPath);
            }
        }
        if (stateDictPath.Length > 0)
        {
            throw new ArgumentException($"'{path}' is a safetensors file, which holds a single state_dict; a state_dict path applies only to .pth files", nameof(stateDictPath));
        }
        return ReadSafetensors(path);
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

    private static Checkpoint ReadSafetensors(string path)
    {
        var (tensors, metadata) = Safetensors.Read(path);
        IReadOnlyDictionary<string, object?> args = new Dictionary<string, object?>();
        if (metadata.TryGetValue(ArgsMetadataKey, out string? json))
        {
            try
            {
                args = ArgsJson.Deserialize(json);
            }
            catch (JsonException e)
            {
                foreach (var tensor in tensors.Values)
                {
                    tensor.Dispose();
                }
                throw new CheckpointFormatException(path, $"the '{ArgsMetadataKey}' metadata is not a JSON object: {e.Message}", e);
            }
        }
        return new Checkpoint(path, CheckpointFileFormat.Safetensors, args, tensors, metadata);
    }
}
