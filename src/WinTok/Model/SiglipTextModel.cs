using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using WinTok.Checkpoints;
using WinTok.Inference;
using WinTok.Text;
using static TorchSharp.torch;

namespace WinTok.Model;

// The SigLIP text tower (HF transformers modeling_siglip.py: SiglipTextEmbeddings, SiglipTextTransformer,
// SiglipTextModel; the reference pins transformers 4.52.3, whose text pooling is the same as in 5.x) with the Gemma
// tokenizer of SigLIP2 checkpoints. WinTok's zero-shot evaluation (examples/eval_tokenizer/eval_metrics_ddp.py) runs
// `SiglipTextModel.from_pretrained(args.model)` on prompts padded to 64 tokens and takes its pooler_output. The encoder
// layers are the vision tower's (Siglip.cs): the same pre-LN blocks, and like the reference we pass no attention mask.
// Field names are the HF state_dict keys (`text_model.embeddings.token_embedding.weight`, ...).

/// <summary>
/// Shape of a SigLIP text tower, read from an HF <c>config.json</c>. Defaults are transformers' <c>SiglipTextConfig</c>
/// defaults, which matter because SigLIP2 checkpoints write only the fields that differ from them.
/// </summary>
/// <param name="ProjectionSize">Width of <c>head</c>'s output, the embedding; transformers uses the hidden size when unset.</param>
public sealed record SiglipTextConfig(
    int VocabSize = 32000,
    int HiddenSize = 768,
    int IntermediateSize = 3072,
    int Layers = 12,
    int Heads = 12,
    int MaxPositionEmbeddings = 64,
    double LayerNormEps = 1e-6,
    int? ProjectionSize = null)
{
    /// <summary>The embedding width: <see cref="ProjectionSize"/>, else the hidden size.</summary>
    public int Width => ProjectionSize ?? HiddenSize;

    /// <summary>
    /// Reads <paramref name="path"/>: a full SigLIP/SigLIP2 config (the text tower is its <c>text_config</c>, defaults
    /// when absent) or a bare text config (<c>model_type</c> <c>siglip_text_model</c>, as <c>SiglipTextModel.save_pretrained</c> writes).
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a SigLIP text config, or its values do not make a tower.</exception>
    public static SiglipTextConfig FromHfConfig(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The text tower's config {path} is missing", path);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            string? modelType = root.TryGetProperty("model_type", out var mt) ? mt.GetString() : null;
            var text = root.TryGetProperty("text_config", out var tc) && tc.ValueKind == JsonValueKind.Object ? tc
                : modelType is "siglip" or "siglip2" ? default(JsonElement?) // a composite config without text_config: all defaults
                : modelType is null or "siglip_text_model" or "siglip2_text_model" ? root
                : throw new InvalidDataException($"{path} is a '{modelType}' config, neither a SigLIP model nor a SigLIP text model");
            var defaults = new SiglipTextConfig();
            if (text is not { } t) return defaults;

            int Int(string name, int fallback) => t.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : fallback;
            string act = t.TryGetProperty("hidden_act", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "gelu_pytorch_tanh";
            if (act != "gelu_pytorch_tanh")
                throw new InvalidDataException($"{path}: hidden_act '{act}' is not supported; SigLIP's text tower uses gelu_pytorch_tanh");
            var config = new SiglipTextConfig(
                Int("vocab_size", defaults.VocabSize),
                Int("hidden_size", defaults.HiddenSize),
                Int("intermediate_size", defaults.IntermediateSize),
                Int("num_hidden_layers", defaults.Layers),
                Int("num_attention_heads", defaults.Heads),
                Int("max_position_embeddings", defaults.MaxPositionEmbeddings),
                t.TryGetProperty("layer_norm_eps", out var eps) && eps.ValueKind == JsonValueKind.Number ? eps.GetDouble() : defaults.LayerNormEps,
                t.TryGetProperty("projection_size", out var p) && p.ValueKind == JsonValueKind.Number ? p.GetInt32() : null);
            var problems = config.Problems().ToList();
            return problems.Count == 0 ? config : throw new InvalidDataException($"{path}: {string.Join("; ", problems)}");
        }
    }

    internal IEnumerable<string> Problems()
    {
        if (VocabSize <= 0 || HiddenSize <= 0 || IntermediateSize <= 0 || Layers <= 0 || Heads <= 0 || MaxPositionEmbeddings <= 0 || Width <= 0)
            yield return $"every size must be positive (vocab {VocabSize}, hidden {HiddenSize}, mlp {IntermediateSize}, layers {Layers}, heads {Heads}, positions {MaxPositionEmbeddings}, projection {Width})";
        else if (HiddenSize % Heads != 0)
            yield return $"hidden size {HiddenSize} is not divisible by {Heads} heads";
    }
}

/// <summary>Token embedding plus learned absolute positions 0..T-1 (HF <c>SiglipTextEmbeddings</c>).</summary>
internal sealed class SiglipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public SiglipTextEmbeddings(SiglipTextConfig config) : base(nameof(SiglipTextEmbeddings))
    {
        token_embedding = nn.Embedding(config.VocabSize, config.HiddenSize);
        position_embedding = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) // (B, T) int64 -> (B, T, D)
    {
        using var scope = NewDisposeScope();
        // position_ids is arange(T), a non-persistent buffer in HF: the lookup is the table's first T rows.
        var positions = position_embedding.weight!.narrow(0, 0, ids.shape[1]);
        return (token_embedding.call(ids) + positions).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// HF <c>SiglipTextTransformer</c>: embeddings, encoder without a mask, final LayerNorm, then <c>head</c> on the hidden
/// state at the <b>last position</b>. With right padding that position holds a pad token, not EOS; the reference pools
/// it all the same (big_vision's "sticky EOS" assumption), so this does too.
/// </summary>
internal sealed class SiglipTextTransformer : nn.Module<Tensor, Tensor>
{
    private readonly SiglipTextEmbeddings embeddings;
    private readonly SiglipEncoder encoder;
    private readonly LayerNorm final_layer_norm;
    private readonly Linear head;

    public SiglipTextTransformer(SiglipTextConfig config) : base(nameof(SiglipTextTransformer))
    {
        embeddings = new SiglipTextEmbeddings(config);
        encoder = new SiglipEncoder(config.Layers, config.HiddenSize, config.Heads, config.IntermediateSize, config.LayerNormEps);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        head = nn.Linear(config.HiddenSize, config.Width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) // (B, T) int64 -> (B, Width) pooler_output
    {
        using var scope = NewDisposeScope();
        var hidden = final_layer_norm.call(encoder.call(embeddings.call(ids)));   // (B, T, D)
        var last = hidden.select(1, -1);                                          // (B, D)
        return Dense.Forward(head, last, InferenceKernels.Torch).MoveToOuterDisposeScope();
    }
}

/// <summary>Holds <c>text_model</c>, as HF's <c>SiglipTextModel</c> does, so keys read <c>text_model.*</c>.</summary>
internal sealed class SiglipTextModel : nn.Module<Tensor, Tensor>
{
    private readonly SiglipTextTransformer text_model;

    public SiglipTextModel(SiglipTextConfig config) : base(nameof(SiglipTextModel))
    {
        text_model = new SiglipTextTransformer(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) => text_model.call(ids);
}

/// <summary>
/// WinTok's zero-shot text tower: a SigLIP2 text model and its Gemma tokenizer, loaded from an HF folder. Texts are
/// tokenized as the reference's <c>build_zero_shot_classifier</c> does (padded to <see cref="ContextLength"/>, no mask)
/// and embedded as <c>pooler_output</c>.
/// </summary>
public sealed class SiglipTextTower : ITextTower
{
    /// <summary>The reference's <c>max_length=64</c> (utils/zero_shot_classifier.py); SigLIP2's position table is 64 long.</summary>
    public const int ContextLength = 64;

    /// <summary>Prefix of the text tower's keys in SigLIP/SigLIP2 checkpoints; the rest (vision_model.*, logit_*) is skipped.</summary>
    public const string KeyPrefix = "text_model.";

    private const string WeightsFile = "model.safetensors";
    private const string ShardIndexFile = "model.safetensors.index.json";

    private readonly SiglipTextModel model;
    private readonly GemmaTokenizer tokenizer;
    private readonly Lazy<string> identity;
    private Device device = CPU;

    private SiglipTextTower(SiglipTextConfig config, SiglipTextModel model, GemmaTokenizer tokenizer, Func<string> identity)
    {
        Config = config;
        this.model = model;
        this.tokenizer = tokenizer;
        this.identity = new Lazy<string>(identity);
    }

    public SiglipTextConfig Config { get; }

    /// <inheritdoc/>
    public int Width => Config.Width;

    /// <inheritdoc/>
    /// <remarks>sha256 over the weight file(s) and the tokenizer files, computed on first use (seconds for so400m).</remarks>
    public string Identity => identity.Value;

    /// <summary>
    /// Loads the tower from <paramref name="modelFolder"/> (<c>config.json</c>, <c>model.safetensors</c> or a sharded
    /// index) and its tokenizer from <paramref name="tokenizerFolder"/> (the same folder for an HF SigLIP2 checkpoint).
    /// Strict: every tensor of the tower must be present with its shape, and no other <c>text_model.*</c> tensor.
    /// The tower is on the CPU in eval mode; call <see cref="PrepareForInference"/> to move it.
    /// </summary>
    /// <exception cref="FileNotFoundException">A config, weight or tokenizer file is missing; the message names it.</exception>
    /// <exception cref="CheckpointFormatException">The weights are unreadable or do not fit the config; the message names the file and the tensors.</exception>
    /// <exception cref="InvalidDataException">A config or tokenizer file is malformed; the message names it.</exception>
    public static SiglipTextTower Load(string modelFolder, string? tokenizerFolder = null)
    {
        tokenizerFolder ??= modelFolder;
        var config = SiglipTextConfig.FromHfConfig(Path.Combine(modelFolder, "config.json"));
        if (config.MaxPositionEmbeddings < ContextLength)
            throw new InvalidDataException($"{Path.Combine(modelFolder, "config.json")}: max_position_embeddings {config.MaxPositionEmbeddings} is below the protocol's {ContextLength} tokens");
        var tokenizer = GemmaTokenizer.Load(tokenizerFolder);
        if (tokenizer.VocabularySize > config.VocabSize)
            throw new InvalidDataException($"The tokenizer in {tokenizerFolder} has {tokenizer.VocabularySize} pieces, more than the tower's vocab_size {config.VocabSize}");

        var weightFiles = WeightFiles(modelFolder);
        var model = new SiglipTextModel(config);
        try
        {
            LoadWeights(model, weightFiles, weightFiles.Count == 1 ? weightFiles[0] : Path.Combine(modelFolder, ShardIndexFile));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        var tokenizerFiles = GemmaTokenizer.FileNames.Select(name => Path.Combine(tokenizerFolder, name)).Where(File.Exists);
        var hashed = weightFiles.Concat(tokenizerFiles).ToList();
        return new SiglipTextTower(config, model, tokenizer, () => ContentHash(hashed));
    }

    /// <inheritdoc/>
    public void PrepareForInference(Device device)
    {
        this.device = device;
        if (device.type != DeviceType.CPU) model.to(device);
        model.eval();
    }

    /// <summary>The reference's token ids for <paramref name="texts"/>: (T, <see cref="ContextLength"/>) int64 on the CPU.</summary>
    public Tensor Tokenize(IReadOnlyList<string> texts) =>
        tensor(tokenizer.EncodeBatch(texts, ContextLength), [texts.Count, (long)ContextLength], ScalarType.Int64);

    /// <summary><c>pooler_output</c> (B, Width) float32 for token ids (B, T) on the tower's device.</summary>
    public Tensor Forward(Tensor ids)
    {
        using var noGrad = no_grad();
        return model.call(ids);
    }

    /// <inheritdoc/>
    public Tensor EncodeTexts(IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        var ids = Tokenize(texts).to(device);
        return Forward(ids).MoveToOuterDisposeScope();
    }

    public void Dispose() => model.Dispose();

    /// <summary>The safetensors file, or every shard an HF index names for the text tower.</summary>
    private static IReadOnlyList<string> WeightFiles(string folder)
    {
        var single = Path.Combine(folder, WeightsFile);
        if (File.Exists(single)) return [single];
        var index = Path.Combine(folder, ShardIndexFile);
        if (!File.Exists(index))
            throw new FileNotFoundException($"The text tower folder {folder} has neither {WeightsFile} nor {ShardIndexFile}", single);
        using var document = JsonDocument.Parse(File.ReadAllBytes(index));
        return document.RootElement.GetProperty("weight_map").EnumerateObject()
            .Where(entry => entry.Name.StartsWith(KeyPrefix, StringComparison.Ordinal))
            .Select(entry => Path.Combine(folder, entry.Value.GetString()!))
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Strictly loads the text_model.* tensors of <paramref name="files"/>; errors name <paramref name="source"/>.</summary>
    private static void LoadWeights(SiglipTextModel model, IReadOnlyList<string> files, string source)
    {
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var file in files)
                foreach (var (name, tensor) in Safetensors.Read(file, name => name.StartsWith(KeyPrefix, StringComparison.Ordinal)).Tensors)
                    tensors[name] = tensor;
            // Checkpoints saved before transformers made position_ids non-persistent still carry it; HF ignores it.
            if (tensors.Remove(KeyPrefix + "embeddings.position_ids", out var positionIds)) positionIds.Dispose();
            if (tensors.Count == 0)
                throw new CheckpointFormatException(source, $"it holds no {KeyPrefix}* tensors (a vision-only checkpoint?)");
            StateDictLoader.Load(model, tensors, strict: true);
        }
        catch (CheckpointMismatchException e)
        {
            throw new CheckpointFormatException(source, $"its {KeyPrefix}* tensors do not fit the text config: {e.Message}", e);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>sha256 over "name sha256" lines of each file, so renaming a folder keeps the identity.</summary>
    private static string ContentHash(IEnumerable<string> paths)
    {
        var lines = new StringBuilder();
        foreach (var path in paths)
        {
            using var file = File.OpenRead(path);
            lines.Append(Path.GetFileName(path)).Append(' ').Append(Convert.ToHexStringLower(SHA256.HashData(file))).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(lines.ToString())));
    }
}
