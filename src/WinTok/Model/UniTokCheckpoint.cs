using WinTok.Checkpoints;
using WinTok.Text;

namespace WinTok.Model;

/// <summary>
/// The one place that knows UniTok's <c>Args</c> (<c>utils/config.py</c> of the UniTok reference): which fields shape
/// the network, their defaults, and how <c>args.model</c> names the ViTamin shape.
/// </summary>
public static class UniTokArgs
{
    /// <summary>Where our own checkpoints record the ViTamin shape, for a model name that is not a preset.</summary>
    public const string ViTaminConfigKey = "vitamin_config";

    /// <summary>
    /// Builds the configuration a checkpoint's args describe. The ViTamin shape is <paramref name="encoder"/> when given,
    /// else the <c>vitamin_config</c> our checkpoints add, else the preset <c>args.model</c> names.
    /// </summary>
    public static UniTokConfig ToConfig(IReadOnlyDictionary<string, object?> args, ViTaminShape? encoder = null)
    {
        var defaults = UniTokConfig.Released;
        var model = ReferenceArgs.Text(args, "model") ?? defaults.Model;
        if (encoder is null && args.TryGetValue(ViTaminConfigKey, out var stored) && stored is IReadOnlyDictionary<string, object?> shape)
            encoder = ShapeFromDictionary(shape);
        encoder ??= ViTaminShape.Presets.TryGetValue(model, out var preset) ? preset : throw new ArgumentException(
            $"The checkpoint's args.model '{model}' names no known ViTamin encoder; choose one explicitly " +
            $"(presets: {string.Join(", ", ViTaminShape.Presets.Keys)}) or give its shape as JSON (stem_width, stage_widths, stage_depths, vit_dim, vit_depth, vit_heads).");
        int Int(string name, int fallback) => ReferenceArgs.Int(args, name, fallback);
        double Real(string name, double fallback) => ReferenceArgs.Real(args, name, fallback);
        var config = new UniTokConfig(
            encoder,
            Model: model,
            ImgSize: Int("img_size", defaults.ImgSize),
            VocabSize: Int("vocab_size", defaults.VocabSize),
            VocabWidth: Int("vocab_width", defaults.VocabWidth),
            NumCodebooks: Int("num_codebooks", defaults.NumCodebooks),
            VqBeta: Real("vq_beta", defaults.VqBeta),
            Le: Real("le", defaults.Le),
            ETemp: Real("e_temp", defaults.ETemp),
            QuantProj: ReferenceArgs.Text(args, "quant_proj") ?? defaults.QuantProj,
            EmbedDim: Int("embed_dim", defaults.EmbedDim),
            NumQuery: Int("num_query", defaults.NumQuery),
            TextWidth: Int("text_width", defaults.TextWidth),
            TextHeads: Int("text_heads", defaults.TextHeads),
            TextLayers: Int("text_layers", defaults.TextLayers),
            TextVocabSize: Int("text_vocab_size", defaults.TextVocabSize),
            TextContextLength: Int("text_context_length", defaults.TextContextLength));
        config.Validate();
        return config;
    }

    /// <summary>The args a checkpoint written by us carries: the reference's field names plus the ViTamin shape.</summary>
    public static Dictionary<string, object?> FromConfig(UniTokConfig config) => new()
    {
        ["model"] = config.Model,
        ["img_size"] = (long)config.ImgSize,
        ["vocab_size"] = (long)config.VocabSize,
        ["vocab_width"] = (long)config.VocabWidth,
        ["num_codebooks"] = (long)config.NumCodebooks,
        ["vq_beta"] = config.VqBeta,
        ["le"] = config.Le,
        ["e_temp"] = config.ETemp,
        ["quant_proj"] = config.QuantProj,
        ["embed_dim"] = (long)config.EmbedDim,
        ["num_query"] = (long)config.NumQuery,
        ["text_width"] = (long)config.TextWidth,
        ["text_heads"] = (long)config.TextHeads,
        ["text_layers"] = (long)config.TextLayers,
        ["text_vocab_size"] = (long)config.TextVocabSize,
        ["text_context_length"] = (long)config.TextContextLength,
        [ViTaminConfigKey] = new Dictionary<string, object?>
        {
            ["stem_width"] = (long)config.Encoder.StemWidth,
            ["stage_widths"] = new List<object?> { (long)config.Encoder.Stage1Width, (long)config.Encoder.Stage2Width },
            ["stage_depths"] = new List<object?> { (long)config.Encoder.Stage1Depth, (long)config.Encoder.Stage2Depth },
            ["vit_dim"] = (long)config.Encoder.EmbedDim,
            ["vit_depth"] = (long)config.Encoder.Depth,
            ["vit_heads"] = (long)config.Encoder.Heads,
            ["mlp_ratio"] = config.Encoder.MlpRatio,
        },
    };

    /// <summary>
    /// Reads a ViTamin shape from the fields our checkpoints write (<see cref="FromConfig"/>). The <c>architecture</c>
    /// section of the UniTok fixtures' config.json names the same fields, except that it calls the stage widths
    /// <c>stage_dims</c>; either name is read.
    /// </summary>
    public static ViTaminShape ShapeFromDictionary(IReadOnlyDictionary<string, object?> shape)
    {
        int Get(string name) => shape.ContainsKey(name)
            ? ReferenceArgs.Int(shape, name, 0)
            : throw new ArgumentException($"The ViTamin config has no '{name}'");
        int Pair(string name, int index) => shape.TryGetValue(name, out var value) && value is IReadOnlyList<object?> list && list.Count == 2
            ? ReferenceArgs.Int(new Dictionary<string, object?> { [name] = list[index] }, name, 0)
            : throw new ArgumentException($"The ViTamin config's '{name}' should be a list of two integers");
        var widths = !shape.ContainsKey("stage_widths") && shape.ContainsKey("stage_dims") ? "stage_dims" : "stage_widths";
        return new ViTaminShape(Get("stem_width"), Pair(widths, 0), Pair(widths, 1),
            Pair("stage_depths", 0), Pair("stage_depths", 1), Get("vit_dim"), Get("vit_depth"), Get("vit_heads"),
            ReferenceArgs.Real(shape, "mlp_ratio", 2.0));
    }

    /// <summary>
    /// A ViTamin shape from a JSON file's text: an object with the fields of <see cref="ShapeFromDictionary"/>, or one
    /// holding them under <c>architecture</c> (a UniTok fixture's config.json) or <c>vitamin_config</c> (our args).
    /// What a user gives for a checkpoint whose <c>args.model</c> names no preset, as an HF config.json for WinTok.
    /// </summary>
    /// <exception cref="ArgumentException">Not a JSON object, or a field is missing or misshaped.</exception>
    public static ViTaminShape ShapeFromJson(string json)
    {
        IReadOnlyDictionary<string, object?> shape;
        try
        {
            shape = ArgsJson.Deserialize(json);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ArgumentException($"not a JSON object: {e.Message}", e);
        }
        foreach (var section in new[] { "architecture", ViTaminConfigKey })
            if (shape.TryGetValue(section, out var nested) && nested is IReadOnlyDictionary<string, object?> inner) shape = inner;
        var result = ShapeFromDictionary(shape);
        if (result.Problems().FirstOrDefault() is { } problem) throw new ArgumentException($"The ViTamin config is impossible: {problem}");
        return result;
    }
}

/// <summary>A UniTok model built and strictly loaded from a checkpoint, with what identifies that checkpoint.</summary>
public sealed record LoadedUniTok(UniTokModel Model, string Path, string Sha256, IReadOnlyDictionary<string, object?> Args);

/// <summary>
/// Builds a <see cref="UniTokModel"/> from the official <c>.pth</c> (<c>ckpt['args']</c>, <c>ckpt['trainer']['unitok']</c>)
/// or a safetensors checkpoint, as the reference's <c>inference.py</c> does: args to configuration, construct, strict load.
/// </summary>
public static class UniTokCheckpoint
{
    /// <summary>The state_dict prefix of the text tower.</summary>
    public const string TextEncoderPrefix = "text_encoder.";

    /// <summary>
    /// Loads strictly: a missing, unexpected or misshaped tensor fails with its name
    /// (<see cref="CheckpointMismatchException"/>); an unreadable file fails with <see cref="CheckpointFormatException"/>.
    /// </summary>
    /// <param name="encoder">The ViTamin shape when <c>args.model</c> names no preset.</param>
    /// <param name="args">Args to use instead of the file's (for safetensors without metadata, such as the reference fixtures).</param>
    /// <param name="sha256">The file's content hash when the caller already has it; else it is computed here.</param>
    public static LoadedUniTok Load(string path, ViTaminShape? encoder = null, IReadOnlyDictionary<string, object?>? args = null, string? sha256 = null)
    {
        using var checkpoint = CheckpointFile.Read(path);
        return Load(checkpoint, encoder, args, sha256);
    }

    /// <summary>As <see cref="Load(string, ViTaminShape?, IReadOnlyDictionary{string, object?}?, string?)"/>, from a checkpoint already read.</summary>
    public static LoadedUniTok Load(Checkpoint checkpoint, ViTaminShape? encoder = null, IReadOnlyDictionary<string, object?>? args = null, string? sha256 = null)
    {
        var config = ConfigOf(checkpoint, encoder, args, out var usedArgs);
        var model = new UniTokModel(config);
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
        return new LoadedUniTok(model, checkpoint.Path, sha256 ?? WinTokCheckpoint.Sha256(checkpoint.Path), usedArgs);
    }

    /// <summary>
    /// Loads only the text tower (the <c>text_encoder.*</c> tensors, strictly) for zero-shot classification, with the
    /// CLIP tokenizer, at the context length the args give. Its identity is the checkpoint's content hash plus the
    /// vocabulary's.
    /// </summary>
    public static UniTokTextTower LoadTextTower(string path, ViTaminShape? encoder = null, IReadOnlyDictionary<string, object?>? args = null, string? sha256 = null)
    {
        using var checkpoint = CheckpointFile.Read(path);
        var config = ConfigOf(checkpoint, encoder, args, out _);
        var text = checkpoint.StateDict
            .Where(pair => pair.Key.StartsWith(TextEncoderPrefix, StringComparison.Ordinal))
            .ToDictionary(pair => pair.Key[TextEncoderPrefix.Length..], pair => pair.Value);
        if (text.Count == 0)
            throw new CheckpointFormatException(path, $"it holds no '{TextEncoderPrefix}*' tensors, so it has no UniTok text tower");
        var tower = new ClipTextTransformer(config);
        try
        {
            StateDictLoader.Load(tower, text, strict: true);
        }
        catch (CheckpointMismatchException e)
        {
            tower.Dispose();
            throw new CheckpointMismatchException(
                e.Missing.Select(k => TextEncoderPrefix + k).ToList(),
                e.Unexpected.Select(k => TextEncoderPrefix + k).ToList(),
                e.Misshaped.Select(m => m with { Name = TextEncoderPrefix + m.Name }).ToList());
        }
        tower.eval();
        var tokenizer = ClipTokenizer.Shared;
        var identity = $"unitok-text:{sha256 ?? WinTokCheckpoint.Sha256(path)}:{tokenizer.VocabularySha256}:{config.TextContextLength}";
        return new UniTokTextTower(tower, tokenizer, identity, config.EmbedDim);
    }

    /// <summary>Writes the model's weights as safetensors with its args (reference names plus the ViTamin shape).</summary>
    public static void Save(UniTokModel model, string path) =>
        CheckpointFile.Write(path, UniTokArgs.FromConfig(model.Config), model.state_dict());

    private static UniTokConfig ConfigOf(Checkpoint checkpoint, ViTaminShape? encoder, IReadOnlyDictionary<string, object?>? args,
        out IReadOnlyDictionary<string, object?> usedArgs)
    {
        usedArgs = args ?? checkpoint.Args;
        if (usedArgs.Count == 0)
            throw new CheckpointFormatException(checkpoint.Path, "it carries no args, so its UniTok configuration is unknown; pass the args");
        return UniTokArgs.ToConfig(usedArgs, encoder);
    }
}
