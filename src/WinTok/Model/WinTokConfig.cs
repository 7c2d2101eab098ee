namespace WinTok.Model;

/// <summary>
/// Shape of the SigLIP vision tower. A WinTok checkpoint's <c>args</c> name the tower (<c>args.model</c>, an HF folder)
/// but do not hold its shape, so it comes from a preset or from the HF <c>config.json</c>.
/// </summary>
public sealed record EncoderShape(
    int HiddenSize,
    int Layers,
    int Heads,
    int IntermediateSize,
    int PatchSize,
    int ImageSize,
    double LayerNormEps = 1e-6)
{
    public int GridSize => ImageSize / PatchSize;
    public int NumPatches => GridSize * GridSize;

    /// <summary>google/siglip2-so400m-patch16-256: the tower the reference trains (the default).</summary>
    public static EncoderShape So400m16x256 { get; } = new(1152, 27, 16, 4304, 16, 256);
    public static EncoderShape So400m16x384 { get; } = new(1152, 27, 16, 4304, 16, 384);
    public static EncoderShape Large16x256 { get; } = new(1024, 24, 16, 4096, 16, 256);
    public static EncoderShape Base16x256 { get; } = new(768, 12, 12, 3072, 16, 256);

    /// <summary>Preset names as users type them, e.g. <c>--preset so400m-16-256</c>.</summary>
    public static IReadOnlyDictionary<string, EncoderShape> Presets { get; } = new Dictionary<string, EncoderShape>
    {
        ["so400m-16-256"] = So400m16x256,
        ["so400m-16-384"] = So400m16x384,
        ["L-16-256"] = Large16x256,
        ["B-16-256"] = Base16x256,
    };

    /// <summary>
    /// The preset an <c>args.model</c> value names, e.g. <c>/mnt/.../siglip2-so400m-patch16-256</c> or
    /// <c>google/siglip2-base-patch16-256</c>; null when the name says nothing we recognise.
    /// </summary>
    public static EncoderShape? FromModelName(string? modelName)
    {
        if (string.IsNullOrWhiteSpace(modelName)) return null;
        var name = modelName.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.ToLowerInvariant() ?? "";
        if (Presets.TryGetValue(name, out var direct) || Presets.TryGetValue(modelName, out direct)) return direct;
        bool Has(string s) => name.Contains(s, StringComparison.Ordinal);
        if (!Has("patch16")) return null;
        if (Has("so400m") && name.EndsWith("-256", StringComparison.Ordinal)) return So400m16x256;
        if (Has("so400m") && name.EndsWith("-384", StringComparison.Ordinal)) return So400m16x384;
        if (Has("large") && name.EndsWith("-256", StringComparison.Ordinal)) return Large16x256;
        if (Has("base") && name.EndsWith("-256", StringComparison.Ordinal)) return Base16x256;
        return null;
    }

    internal IEnumerable<string> Problems(string owner)
    {
        if (HiddenSize <= 0 || Layers <= 0 || Heads <= 0 || IntermediateSize <= 0 || PatchSize <= 0 || ImageSize <= 0)
            yield return $"{owner}: every size must be positive (hidden {HiddenSize}, layers {Layers}, heads {Heads}, mlp {IntermediateSize}, patch {PatchSize}, image {ImageSize})";
        else
        {
            if (HiddenSize % Heads != 0) yield return $"{owner}: hidden size {HiddenSize} is not divisible by {Heads} heads";
            if (ImageSize % PatchSize != 0) yield return $"{owner}: image size {ImageSize} is not a multiple of patch size {PatchSize}";
            if (HiddenSize % 2 != 0) yield return $"{owner}: hidden size {HiddenSize} must be even for the 1-D sin-cos semantic position embedding";
        }
    }
}

/// <summary>
/// Architecture of a WinTok tokenizer: the fields of the reference <c>Args</c> that shape the network
/// (<c>utils/config.py</c>), plus the encoder shape. Training-only loss weights live with the trainer.
/// </summary>
/// <param name="NumLatentTokens">N semantic tokens appended after the patches (32 in the reference config, 256 in its train.sh).</param>
/// <param name="VocabSize">Codes summed over all codebooks (16384 = 4 x 4096).</param>
/// <param name="VocabWidth">Code width summed over all codebooks (32 = 4 x 8).</param>
/// <param name="NumCodebooks">Sub-quantizers; also the head count of both attention projections.</param>
/// <param name="EntropyWeight">The reference's <c>le</c>: the entropy loss is only computed when it is positive.</param>
/// <param name="EntropyTemperature">The reference's <c>e_temp</c>: logits are distances divided by it.</param>
public sealed record WinTokConfig(
    EncoderShape Encoder,
    int NumLatentTokens = 32,
    int VocabSize = 16384,
    int VocabWidth = 32,
    int NumCodebooks = 4,
    double VqBeta = 0.25,
    double EntropyWeight = 0.1,
    double EntropyTemperature = 0.01,
    int DecoderDepth = 27,
    int DecoderHeads = 16,
    int DecoderHidden = 1152,
    int DecoderIntermediate = 4304)
{
    /// <summary>The reference default: SigLIP2 so400m/16 at 256 with a so400m-sized decoder and 32 semantic tokens.</summary>
    public static WinTokConfig Default { get; } = new(EncoderShape.So400m16x256);

    /// <summary>A decoder the size of the encoder, as the reference's comments pair them (B 12/768, L 24/1024, so 27/1152).</summary>
    public static WinTokConfig ForPreset(EncoderShape encoder, int numLatentTokens = 32) => new(
        encoder, numLatentTokens,
        DecoderDepth: encoder.Layers, DecoderHeads: encoder.Heads,
        DecoderHidden: encoder.HiddenSize, DecoderIntermediate: encoder.IntermediateSize);

    public int CodebookSize => VocabSize / NumCodebooks;
    public int CodeWidth => VocabWidth / NumCodebooks;
    public QuantizerConfig Quantizer => new(NumCodebooks, VocabSize, VocabWidth, VqBeta, EntropyWeight, EntropyTemperature);
    public int PixelTokens => Encoder.NumPatches;

    /// <summary>Throws with every reason at once when the network cannot be built.</summary>
    public void Validate()
    {
        var problems = Encoder.Problems("encoder").ToList();
        if (NumLatentTokens < 1) problems.Add($"num_latent_tokens must be at least 1, got {NumLatentTokens}");
        if (NumCodebooks < 1) problems.Add($"num_codebooks must be at least 1, got {NumCodebooks}");
        else
        {
            if (VocabSize < NumCodebooks || VocabSize % NumCodebooks != 0)
                problems.Add($"vocab_size {VocabSize} is not a positive multiple of num_codebooks {NumCodebooks}");
            if (VocabWidth < NumCodebooks || VocabWidth % NumCodebooks != 0)
                problems.Add($"vocab_width {VocabWidth} is not a positive multiple of num_codebooks {NumCodebooks}");
            var wide = Math.Max(Encoder.HiddenSize, VocabWidth);
            if (wide % NumCodebooks != 0)
                problems.Add($"the attention projections split width {wide} into num_codebooks {NumCodebooks} heads, which does not divide it");
        }
        if (VocabWidth > 0 && Encoder.HiddenSize > 0 && Encoder.HiddenSize % VocabWidth != 0 && VocabWidth % Encoder.HiddenSize != 0)
            problems.Add($"the attention projection needs one of encoder hidden {Encoder.HiddenSize} and vocab_width {VocabWidth} to divide the other");
        if (DecoderDepth < 1 || DecoderHeads < 1 || DecoderHidden < 1 || DecoderIntermediate < 1)
            problems.Add($"decoder sizes must be positive (depth {DecoderDepth}, heads {DecoderHeads}, hidden {DecoderHidden}, mlp {DecoderIntermediate})");
        else
        {
            if (DecoderHidden % DecoderHeads != 0) problems.Add($"decoder hidden {DecoderHidden} is not divisible by {DecoderHeads} heads");
            if (DecoderHidden % 4 != 0) problems.Add($"decoder hidden {DecoderHidden} must be a multiple of 4 for the 2-D sin-cos position embedding");
        }
        if (VqBeta < 0) problems.Add($"vq_beta must not be negative, got {VqBeta}");
        if (EntropyTemperature <= 0) problems.Add($"e_temp must be positive, got {EntropyTemperature}");
        if (problems.Count > 0)
            throw new ArgumentException("Impossible WinTok configuration: " + string.Join("; ", problems));
    }
}
