using System.Security.Cryptography;
using WinTok.Checkpoints;

namespace WinTok.Model;

/// <summary>A model built and strictly loaded from a checkpoint, with what identifies that checkpoint.</summary>
public sealed record LoadedCheckpoint(WinTokModel Model, string Path, string Sha256, IReadOnlyDictionary<string, object?> Args);

/// <summary>
/// Builds a <see cref="WinTokModel"/> from an official <c>.pth</c> or a safetensors checkpoint, as the reference's
/// <c>from_checkpoint</c> does: args to configuration, construct, strict load. Saves safetensors that carry their args.
/// </summary>
public static class WinTokCheckpoint
{
    /// <summary>
    /// Loads strictly: a missing, unexpected or misshaped tensor fails with its name
    /// (<see cref="CheckpointMismatchException"/>); an unreadable file fails with <see cref="CheckpointFormatException"/>.
    /// </summary>
    /// <param name="encoder">The encoder shape when the checkpoint's args do not determine it (see <see cref="ReferenceArgs.ToConfig"/>).</param>
    /// <param name="args">Args to use instead of the file's (for safetensors without metadata, such as the reference fixtures).</param>
    /// <param name="sha256">The file's content hash when the caller already has it (computed once per job); else it is computed here.</param>
    public static LoadedCheckpoint Load(string path, EncoderShape? encoder = null, IReadOnlyDictionary<string, object?>? args = null, string? sha256 = null)
    {
        using var checkpoint = CheckpointFile.Read(path);
        return Load(checkpoint, encoder, args, sha256);
    }

    /// <summary>As <see cref="Load(string, EncoderShape?, IReadOnlyDictionary{string, object?}?, string?)"/>, from a checkpoint already read.</summary>
    public static LoadedCheckpoint Load(Checkpoint checkpoint, EncoderShape? encoder = null, IReadOnlyDictionary<string, object?>? args = null, string? sha256 = null)
    {
        var path = checkpoint.Path;
        args ??= checkpoint.Args;
        if (args.Count == 0 && encoder is null)
            throw new CheckpointFormatException(path, "it carries no args, so its configuration is unknown; pass the args or an encoder preset");
        var config = ReferenceArgs.ToConfig(args, encoder);
        var model = new WinTokModel(config);
        try
        {
            checkpoint.LoadInto(model, strict: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return new LoadedCheckpoint(model, path, sha256 ?? Sha256(path), args);
    }

    /// <summary>Writes the model's weights as safetensors with its args (reference names plus the encoder shape).</summary>
    public static void Save(WinTokModel model, string path, IReadOnlyDictionary<string, object?>? extraArgs = null)
    {
        var args = ReferenceArgs.FromConfig(model.Config);
        foreach (var (key, value) in extraArgs ?? new Dictionary<string, object?>()) args.TryAdd(key, value);
        CheckpointFile.Write(path, args, model.state_dict());
    }

    /// <summary>Hex sha256 of the file: the checkpoint identity recorded with every token shard.</summary>
    public static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }
}
