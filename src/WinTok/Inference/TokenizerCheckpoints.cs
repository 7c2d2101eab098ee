using WinTok.Checkpoints;
using WinTok.Model;

namespace WinTok.Inference;

/// <summary>How to build a model from a checkpoint whose own args do not say everything.</summary>
/// <param name="Kind">The architecture (<see cref="ModelKinds"/>); null detects it from the checkpoint.</param>
/// <param name="EncoderPreset">WinTok: a SigLIP encoder preset name (<see cref="EncoderShape.Presets"/>).</param>
/// <param name="EncoderConfigJson">WinTok: the contents of an HF SigLIP vision <c>config.json</c> giving the encoder shape.</param>
public sealed record ModelLoadOptions(string? Kind = null, string? EncoderPreset = null, string? EncoderConfigJson = null)
{
    public static ModelLoadOptions Default { get; } = new();
}

/// <summary>A model built and strictly loaded from a checkpoint file, with the file's content hash.</summary>
public sealed record LoadedTokenizer(ITokenizerModel Model, string Path, string Sha256);

/// <summary>
/// The one entry point that turns a checkpoint file into a model, whatever the architecture: it detects the kind
/// (or takes the one given), builds the network from the checkpoint's args and loads its weights strictly. A bad file
/// fails with <see cref="CheckpointFormatException"/> or <see cref="CheckpointMismatchException"/>, naming what is wrong.
/// </summary>
public static class TokenizerCheckpoints
{
    /// <summary>Loads <paramref name="path"/>; <paramref name="sha256"/> is the content hash when the caller already knows it.</summary>
    public static LoadedTokenizer Load(string path, ModelLoadOptions options, string? sha256 = null)
    {
        var kind = options.Kind ?? ModelKinds.WinTok;
        if (kind != ModelKinds.WinTok)
            throw new ArgumentException($"Unknown model kind '{kind}'; choose one of {string.Join(", ", ModelKinds.All)}");
        var loaded = WinTokCheckpoint.Load(path, EncoderShapeFrom(options), sha256: sha256);
        return new LoadedTokenizer(loaded.Model, path, loaded.Sha256);
    }

    /// <summary>The encoder shape a WinTok load should use: a named preset, an HF config.json, or null (from the args).</summary>
    public static EncoderShape? EncoderShapeFrom(ModelLoadOptions options)
    {
        if (options.EncoderPreset is not null && options.EncoderConfigJson is not null)
            throw new ArgumentException("Give either an encoder preset or an encoder config.json, not both");
        if (options.EncoderPreset is not null)
            return EncoderShape.Presets.TryGetValue(options.EncoderPreset, out var shape) ? shape
                : throw new ArgumentException($"Unknown encoder preset '{options.EncoderPreset}'; choose one of {string.Join(", ", EncoderShape.Presets.Keys)}");
        if (options.EncoderConfigJson is { } config)
            return ReferenceArgs.EncoderFromHfConfigJson(config);
        return null;
    }
}
