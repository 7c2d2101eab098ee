using System.Text.Json;

namespace WinTok.Model;

/// <summary>
/// The one place that knows the reference's <c>Args</c> (<c>utils/config.py</c>): which fields shape the network, their
/// defaults, and how a checkpoint names its encoder. Values may come from a <c>.pth</c> pickle (long, double, string,
/// bool, null) or from JSON (<see cref="JsonElement"/>).
/// </summary>
public static class ReferenceArgs
{
    /// <summary>Where our own checkpoints record the encoder shape, in HF config.json field names.</summary>
    public const string EncoderConfigKey = "encoder_config";

    /// <summary>
    /// Builds the configuration a checkpoint describes. The reference's <c>args</c> do not hold the encoder shape: it is
    /// <paramref name="encoder"/> when given, else the <c>encoder_config</c> our checkpoints add, else the preset that
    /// <c>args.model</c> names.
    /// </summary>
    public static WinTokConfig ToConfig(IReadOnlyDictionary<string, object?> args, EncoderShape? encoder = null)
    {
        var model = Text(args, "model");
        if (encoder is null && args.TryGetValue(EncoderConfigKey, out var stored) && stored is IReadOnlyDictionary<string, object?> hf)
            encoder = EncoderFromHfConfig(hf);
        encoder ??= EncoderShape.FromModelName(model) ?? throw new ArgumentException(
            $"The checkpoint's args.model '{model}' names no known SigLIP encoder; choose one explicitly " +
            $"(presets: {string.Join(", ", EncoderShape.Presets.Keys)}) or give its HF config.json.");
        var config = new WinTokConfig(
            encoder,
            NumLatentTokens: Int(args, "num_latent_tokens", 32),
            VocabSize: Int(args, "vocab_size", 16384),
            VocabWidth: Int(args, "vocab_width", 32),
            NumCodebooks: Int(args, "num_codebooks", 4),
            VqBeta: Real(args, "vq_beta", 0.25),
            EntropyWeight: Real(args, "le", 0.1),
            EntropyTemperature: Real(args, "e_temp", 0.01),
            DecoderDepth: Int(args, "decoder_rec_depth", 27),
            DecoderHeads: Int(args, "decoder_rec_num_heads", 16),
            DecoderHidden: Int(args, "decoder_rec_hidden_size", 1152),
            DecoderIntermediate: Int(args, "decoder_rec_intermediate_size", 4304));
        config.Validate();
        return config;
    }

    /// <summary>The args a checkpoint written by us carries, in the reference's field names.</summary>
    public static Dictionary<string, object?> FromConfig(WinTokConfig config, string? modelName = null) => new()
    {
        ["model"] = modelName ?? EncoderShape.Presets.FirstOrDefault(p => p.Value == config.Encoder).Key ?? "custom",
        ["img_size"] = (long)config.Encoder.ImageSize,
        ["num_latent_tokens"] = (long)config.NumLatentTokens,
        ["vocab_size"] = (long)config.VocabSize,
        ["vocab_width"] = (long)config.VocabWidth,
        ["num_codebooks"] = (long)config.NumCodebooks,
        ["vq_beta"] = config.VqBeta,
        ["le"] = config.EntropyWeight,
        ["e_temp"] = config.EntropyTemperature,
        ["decoder_rec_depth"] = (long)config.DecoderDepth,
        ["decoder_rec_num_heads"] = (long)config.DecoderHeads,
        ["decoder_rec_hidden_size"] = (long)config.DecoderHidden,
        ["decoder_rec_intermediate_size"] = (long)config.DecoderIntermediate,
        [EncoderConfigKey] = new Dictionary<string, object?>
        {
            ["hidden_size"] = (long)config.Encoder.HiddenSize,
            ["num_hidden_layers"] = (long)config.Encoder.Layers,
            ["num_attention_heads"] = (long)config.Encoder.Heads,
            ["intermediate_size"] = (long)config.Encoder.IntermediateSize,
            ["patch_size"] = (long)config.Encoder.PatchSize,
            ["image_size"] = (long)config.Encoder.ImageSize,
            ["layer_norm_eps"] = config.Encoder.LayerNormEps,
            ["hidden_act"] = "gelu_pytorch_tanh",
        },
    };

    /// <summary>Reads an HF SigLIP vision <c>config.json</c>'s text (or a full SigLIP config, whose <c>vision_config</c> is used).</summary>
    public static EncoderShape EncoderFromHfConfigJson(string json)
    {
        IReadOnlyDictionary<string, object?> config;
        try
        {
            config = WinTok.Checkpoints.ArgsJson.Deserialize(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"not a JSON object: {e.Message}", e);
        }
        if (config.TryGetValue("vision_config", out var vision) && vision is IReadOnlyDictionary<string, object?> nested) config = nested;
        return EncoderFromHfConfig(config);
    }

    /// <summary>Reads the fields of an HF <c>SiglipVisionConfig</c> (config.json) that shape the tower.</summary>
    public static EncoderShape EncoderFromHfConfig(IReadOnlyDictionary<string, object?> config)
    {
        int Get(string name) => config.ContainsKey(name)
            ? Int(config, name, 0)
            : throw new ArgumentException($"The encoder config has no '{name}'");
        var act = Text(config, "hidden_act");
        if (act is not null && act != "gelu_pytorch_tanh")
            throw new ArgumentException($"The encoder config asks for activation '{act}'; WinTok's SigLIP encoder uses gelu_pytorch_tanh");
        return new EncoderShape(Get("hidden_size"), Get("num_hidden_layers"), Get("num_attention_heads"),
            Get("intermediate_size"), Get("patch_size"), Get("image_size"), Real(config, "layer_norm_eps", 1e-6));
    }

    internal static int Int(IReadOnlyDictionary<string, object?> args, string name, int fallback) => args.TryGetValue(name, out var v) && v is not null
        ? v switch
        {
            long l => checked((int)l),
            int i => i,
            double d when d == Math.Floor(d) => (int)d,
            JsonElement { ValueKind: JsonValueKind.Number } j => j.GetInt32(),
            _ => throw new ArgumentException($"args.{name} should be an integer, got '{v}'"),
        }
        : fallback;

    internal static double Real(IReadOnlyDictionary<string, object?> args, string name, double fallback) => args.TryGetValue(name, out var v) && v is not null
        ? v switch
        {
            double d => d,
            float f => f,
            long l => l,
            int i => i,
            JsonElement { ValueKind: JsonValueKind.Number } j => j.GetDouble(),
            _ => throw new ArgumentException($"args.{name} should be a number, got '{v}'"),
        }
        : fallback;

    internal static string? Text(IReadOnlyDictionary<string, object?> args, string name) => args.TryGetValue(name, out var v)
        ? v switch
        {
            null => null,
            string s => s,
            JsonElement { ValueKind: JsonValueKind.String } j => j.GetString(),
            _ => v.ToString(),
        }
        : null;
}
