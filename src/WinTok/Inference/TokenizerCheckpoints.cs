using WinTok.Checkpoints;
using WinTok.Model;

namespace WinTok.Inference;

/// <summary>How to build a model from a checkpoint whose own args do not say everything.</summary>
/// <param name="Kind">The architecture (<see cref="ModelKinds"/>); null detects it from the checkpoint.</param>
/// <param name="EncoderPreset">
/// WinTok: a SigLIP encoder preset name (<see cref="EncoderShape.Presets"/>). UniTok: a ViTamin preset name
/// (<see cref="ViTaminShape.Presets"/>), for a checkpoint whose <c>args.model</c> names none.
/// </param>
/// <param name="EncoderConfigJson">
/// The encoder shape as JSON, for a checkpoint whose args name no preset. WinTok: the contents of an HF SigLIP vision
/// <c>config.json</c>. UniTok: a ViTamin shape (<see cref="UniTokArgs.ShapeFromJson"/>).
/// </param>
public sealed record ModelLoadOptions(string? Kind = null, string? EncoderPreset = null, string? EncoderConfigJson = null)
{
    public static ModelLoadOptions Default { get; } = new();
}

/// <summary>What a checkpoint's args say about its model, read without its tensors.</summary>
/// <param name="Kind">The architecture (<see cref="ModelKinds"/>).</param>
/// <param name="ImageSize">The model's input side in pixels.</param>
/// <param name="ArgsJson">The configuration in the reference's <c>Args</c> names, as JSON.</param>
public sealed record CheckpointSummary(string Kind, int ImageSize, string ArgsJson);

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
        CheckKindName(options.Kind);
        using var checkpoint = CheckpointFile.Read(path);
        var kind = KindOf(path, options.Kind, KindFromArgs(checkpoint.Args), () => checkpoint);
        if (kind == ModelKinds.UniTok)
        {
            var unitok = UniTokCheckpoint.Load(checkpoint, ViTaminShapeFrom(options), sha256: sha256);
            return new LoadedTokenizer(unitok.Model, path, unitok.Sha256);
        }
        var wintok = WinTokCheckpoint.Load(checkpoint, EncoderShapeFrom(options), sha256: sha256);
        return new LoadedTokenizer(wintok.Model, path, wintok.Sha256);
    }

    /// <summary>
    /// The configuration of <paramref name="path"/> from its args alone (the pickle of a .pth, the header of a
    /// safetensors file): what a submitter needs to know, without reading gigabytes of tensors. Only when neither the
    /// options nor the args say which kind it is are the tensor names read.
    /// </summary>
    public static CheckpointSummary Summarize(string path, ModelLoadOptions options)
    {
        CheckKindName(options.Kind);
        var args = CheckpointFile.ReadArgs(path);
        Checkpoint? read = null;
        string kind;
        try
        {
            kind = KindOf(path, options.Kind, KindFromArgs(args), () => read ??= CheckpointFile.Read(path));
        }
        finally
        {
            read?.Dispose();
        }
        if (kind == ModelKinds.UniTok)
        {
            var unitok = UniTokArgs.ToConfig(args, ViTaminShapeFrom(options));
            return new CheckpointSummary(kind, unitok.ImgSize, System.Text.Json.JsonSerializer.Serialize(UniTokArgs.FromConfig(unitok)));
        }
        if (args.Count == 0 && options.EncoderPreset is null && options.EncoderConfigJson is null)
            throw new CheckpointFormatException(path, "it carries no args, so its configuration is unknown; pass the args or an encoder preset");
        var wintok = ReferenceArgs.ToConfig(args, EncoderShapeFrom(options));
        return new CheckpointSummary(kind, wintok.Encoder.ImageSize, System.Text.Json.JsonSerializer.Serialize(ReferenceArgs.FromConfig(wintok)));
    }

    private static void CheckKindName(string? kind)
    {
        if (kind is not null && !ModelKinds.All.Contains(kind))
            throw new ArgumentException($"Unknown model kind '{kind}'; choose one of {string.Join(", ", ModelKinds.All)}");
    }

    /// <summary>
    /// The kind to build: the one detected (from the args when they say, else from the tensor names), unless one is
    /// given. A given kind that the file plainly contradicts is refused, naming both, rather than failing later on the
    /// wrong architecture's terms (a UniTok file read as WinTok would complain about its SigLIP encoder); where nothing
    /// in the file says, the given kind is taken and the strict load judges it.
    /// </summary>
    private static string KindOf(string path, string? given, string? fromArgs, Func<Checkpoint> checkpoint)
    {
        string? detected;
        try
        {
            detected = fromArgs ?? DetectKind(checkpoint());
        }
        catch (CheckpointFormatException) when (given is not null)
        {
            detected = null;
        }
        if (given is not null && detected is not null && given != detected)
            throw new ArgumentException($"{path} holds a {detected} checkpoint, not a {given} one; leave the model kind out to detect it, or give '{detected}'");
        return given ?? detected!;
    }

    /// <summary>The kind a checkpoint's args name, or null when they say nothing either way.</summary>
    private static string? KindFromArgs(IReadOnlyDictionary<string, object?> args)
    {
        if (ReferenceArgs.Text(args, "model") is { } model && model.StartsWith("vitamin", StringComparison.OrdinalIgnoreCase))
            return ModelKinds.UniTok;
        if (args.ContainsKey("num_latent_tokens") || args.ContainsKey("decoder_rec_depth"))
            return ModelKinds.WinTok;
        return null;
    }

    /// <summary>
    /// The architecture a checkpoint holds: from its args when they say (UniTok's <c>args.model</c> is a timm ViTamin
    /// name; WinTok's args name its semantic tokens and decoder), else from its state_dict keys (UniTok's hybrid conv
    /// stem and text tower, WinTok's SigLIP encoder and semantic tokens).
    /// </summary>
    /// <exception cref="CheckpointFormatException">Neither args nor keys belong to a known kind.</exception>
    public static string DetectKind(Checkpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (KindFromArgs(checkpoint.Args) is { } kind) return kind;
        var keys = checkpoint.StateDict.Keys.ToList();
        bool HasPrefix(string prefix) => keys.Any(key => key.StartsWith(prefix, StringComparison.Ordinal));
        if (HasPrefix("encoder.patch_embed.backbone.") || HasPrefix(UniTokCheckpoint.TextEncoderPrefix))
            return ModelKinds.UniTok;
        if (HasPrefix("encoder.vision_model.") || checkpoint.StateDict.ContainsKey("query_tokens"))
            return ModelKinds.WinTok;
        throw new CheckpointFormatException(checkpoint.Path,
            $"neither its args nor its {keys.Count} tensor names say which model it holds ({string.Join(", ", ModelKinds.All)}); pass the kind explicitly");
    }

    /// <summary>
    /// The ViTamin shape a UniTok load should use: a named preset, a shape given as JSON, or null (from the args:
    /// the shape our checkpoints store, or the preset <c>args.model</c> names).
    /// </summary>
    public static ViTaminShape? ViTaminShapeFrom(ModelLoadOptions options)
    {
        if (options.EncoderPreset is not null && options.EncoderConfigJson is not null)
            throw new ArgumentException("Give either an encoder preset or an encoder config, not both");
        if (options.EncoderPreset is { } preset)
            return ViTaminShape.Presets.TryGetValue(preset, out var shape) ? shape
                : throw new ArgumentException($"Unknown ViTamin preset '{preset}'; choose one of {string.Join(", ", ViTaminShape.Presets.Keys)}");
        return options.EncoderConfigJson is { } config ? UniTokArgs.ShapeFromJson(config) : null;
    }

    /// <summary>
    /// Checks that <paramref name="json"/> describes an encoder of <paramref name="kind"/> (either kind when null), so a
    /// bad encoder config fails before a job is planned.
    /// </summary>
    /// <exception cref="ArgumentException">It describes no encoder of that kind, saying what is wrong.</exception>
    public static void CheckEncoderConfig(string json, string? kind)
    {
        CheckKindName(kind);
        if (kind == ModelKinds.WinTok)
        {
            ReferenceArgs.EncoderFromHfConfigJson(json);
            return;
        }
        if (kind == ModelKinds.UniTok)
        {
            UniTokArgs.ShapeFromJson(json);
            return;
        }
        try
        {
            ReferenceArgs.EncoderFromHfConfigJson(json);
        }
        catch (ArgumentException siglip)
        {
            try
            {
                UniTokArgs.ShapeFromJson(json);
            }
            catch (ArgumentException vitamin)
            {
                throw new ArgumentException($"neither a SigLIP vision config.json ({siglip.Message}) nor a ViTamin shape ({vitamin.Message})", vitamin);
            }
        }
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
