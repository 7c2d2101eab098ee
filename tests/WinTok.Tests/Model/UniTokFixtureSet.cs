using System.Collections.Concurrent;
using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.TestSupport;
using WinTok.Text;
using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>
/// One UniTok reference fixture set (<c>NAME.config.json</c>, <c>.pth</c>, <c>.weights.safetensors</c>,
/// <c>.io.safetensors</c>, see tests/fixtures/unitok/README.md) and what our model computes for the same inputs, keyed by
/// the io file's names. Loaded once per checkpoint format and shared by the parity tests.
/// </summary>
internal sealed class UniTokFixtureSet
{
    private static readonly ConcurrentDictionary<string, Lazy<UniTokFixtureSet>> Cache = new();

    private UniTokFixtureSet(string configPath, string format)
    {
        var folder = Path.GetDirectoryName(configPath)!;
        Name = Path.GetFileName(configPath)[..^".config.json".Length];
        var config = ArgsJson.Deserialize(File.ReadAllText(configPath));
        var args = (IReadOnlyDictionary<string, object?>)config["args"]!;
        Prompts = config.TryGetValue("prompts", out var prompts) && prompts is IReadOnlyList<object?> list
            ? list.Select(p => (string)p!).ToList()
            : [];
        // A model name the reference registers (vitamin_large, ...) is a preset; the fixture's own variant is described
        // by the config's architecture section.
        Encoder = ViTaminShape.Presets.ContainsKey((string)args["model"]!)
            ? null
            : ShapeFromArchitecture((IReadOnlyDictionary<string, object?>)config["architecture"]!);
        Io = Safetensors.Read(Path.Combine(folder, Name + ".io.safetensors")).Tensors;

        // The .pth carries its own args (read from the pickle); the safetensors carry none, so the test passes the config's.
        CheckpointPath = Path.Combine(folder, format == "pth" ? Name + ".pth" : Name + ".weights.safetensors");
        FileArgs = format == "pth" ? null : args;
        var input = Io["input"];
        var outputs = new Dictionary<string, Tensor>();
        using (no_grad())
        using (var model = Load().Model)
        {
            Config = model.Config;
            outputs["indices"] = model.ImageToIndices(input);
            using var encoded = model.Encode(input);
            outputs["encoder_tokens"] = encoded.EncoderTokens.clone();
            outputs["quant_proj_out"] = encoded.Projected.clone();
            outputs["codes"] = encoded.Codes.clone();
            outputs["quant"] = encoded.Quant.clone();
            outputs["recon_unclamped"] = model.Decode(encoded.Quant);
            using (var reconstruction = model.Reconstruct(input))
                outputs["recon"] = reconstruction.Images.clamp(-1, 1); // the reference's img_to_reconstructed_img clamps
            if (Io.TryGetValue("indices", out var referenceIndices))
            {
                using var fromIndices = model.IndicesToImage(referenceIndices);
                outputs["recon_from_indices"] = fromIndices.clamp(-1, 1); // so does its idx_to_img
            }
            outputs["image_embedding"] = model.EncodeImage(input, normalize: false);
            outputs["image_embedding_normalized"] = model.EncodeImage(input);
            if (Io.TryGetValue("text_ids", out var textIds))
            {
                outputs["text_embedding"] = model.EncodeText(textIds);
                outputs["text_embedding_normalized"] = model.EncodeText(textIds, normalize: true);
                outputs["zero_shot_logits"] = 100 * outputs["image_embedding_normalized"].matmul(outputs["text_embedding_normalized"].t());
            }
            if (Prompts.Count > 0)
                outputs["text_ids"] = tensor(ClipTokenizer.Shared.Tokenize(Prompts, Config.TextContextLength), [Prompts.Count, Config.TextContextLength], int64);

            // The serving path: prepared for inference (float32 here), through the product's interface.
            model.PrepareForInference(ScalarType.Float32);
            using var served = ((WinTok.Inference.ITokenizerModel)model).Tokenize(input);
            ServedIndices = served.Indices.clone();
            ServedSemanticTokens = served.SemanticTokens;
        }

        // The serving path with the convolution stages rewritten (NHWC maps, 1x1 convolutions as GEMMs, sub-pixel
        // upsampling): the same torch kernels on the CPU, so only float32 summation order may differ.
        using (no_grad())
        using (var rewritten = Load().Model)
        {
            rewritten.PrepareForInference(ScalarType.Float32, InferenceKernels.TorchWithConvolutionRewrites);
            RewrittenIndices = rewritten.ImageToIndices(input);
            using var decoded = rewritten.IndicesToImage(Io.TryGetValue("indices", out var ids) ? ids : RewrittenIndices);
            RewrittenReconstruction = decoded.clamp(-1, 1);
        }

        // Training mode on a freshly loaded model, as the generator ran forward(input, vae_bs=B, text=text_ids).
        using (var training = Load().Model)
        {
            training.train();
            var text = Io.TryGetValue("text_ids", out var ids) ? ids : null;
            using var forward = training.Forward(input, (int)input.shape[0], text);
            outputs["train_vq_loss"] = forward.VqLoss.detach().clone();
            outputs["train_entropy_loss"] = forward.EntropyLoss.detach().clone();
            outputs["train_recon"] = forward.ImgRec.detach().clone();
            outputs["train_clip_image_features"] = forward.ClipImageFeatures.detach().clone();
            if (forward.ClipTextFeatures is { } clipText) outputs["train_clip_text_features"] = clipText.detach().clone();
            outputs["train_logit_scale"] = forward.LogitScale.detach().clone();
        }
        Outputs = outputs;

        using var tower = UniTokCheckpoint.LoadTextTower(CheckpointPath, Encoder, FileArgs);
        tower.PrepareForInference(CPU);
        if (Prompts.Count > 0)
        {
            using var noGrad = no_grad();
            TowerTextEmbedding = tower.EncodeTexts(Prompts);
        }
        TowerIdentity = tower.Identity;
    }

    public string Name { get; }
    public ViTaminShape? Encoder { get; }
    public UniTokConfig Config { get; }
    public IReadOnlyList<string> Prompts { get; }
    public string CheckpointPath { get; }
    public IReadOnlyDictionary<string, object?>? FileArgs { get; }
    public IReadOnlyDictionary<string, Tensor> Io { get; }

    /// <summary>Our outputs under the io file's names.</summary>
    public IReadOnlyDictionary<string, Tensor> Outputs { get; }

    public Tensor ServedIndices { get; }

    /// <summary>Ids and clamped reconstruction (of the reference ids) with the convolution stages rewritten for serving.</summary>
    public Tensor RewrittenIndices { get; }
    public Tensor RewrittenReconstruction { get; }
    public Tensor? ServedSemanticTokens { get; }
    public Tensor? TowerTextEmbedding { get; }
    public string TowerIdentity { get; }

    public LoadedUniTok Load() => UniTokCheckpoint.Load(CheckpointPath, Encoder, FileArgs);

    public static UniTokFixtureSet Get(string configPath, string format) =>
        Cache.GetOrAdd(configPath + "|" + format, _ => new Lazy<UniTokFixtureSet>(() => new UniTokFixtureSet(configPath, format))).Value;

    /// <summary>Every <c>*.config.json</c> in tests/fixtures/unitok and, when set, in <c>WINTOK_UNITOK_FIXTURES</c>; each in both formats.</summary>
    public static TheoryData<string, string> All()
    {
        var data = new TheoryData<string, string>();
        foreach (var config in TestFixtures.WithExtra("unitok", "WINTOK_UNITOK_FIXTURES")
                     .SelectMany(f => Directory.EnumerateFiles(f, "*.config.json")).Order(StringComparer.Ordinal))
            foreach (var format in new[] { "pth", "safetensors" })
                data.Add(config, format);
        return data;
    }

    /// <summary>The ViTamin shape from the fixture config's <c>architecture</c> section (generate.py writes it).</summary>
    private static ViTaminShape ShapeFromArchitecture(IReadOnlyDictionary<string, object?> architecture)
    {
        int Int(string name) => ReferenceArgs.Int(architecture, name, -1);
        int At(string name, int index) => (int)(long)((IReadOnlyList<object?>)architecture[name]!)[index]!;
        // Every ViTamin uses GeGLU at twice the width; the section states it in words only.
        return new ViTaminShape(Int("stem_width"), At("stage_dims", 0), At("stage_dims", 1), At("stage_depths", 0), At("stage_depths", 1),
            Int("vit_dim"), Int("vit_depth"), Int("vit_heads"));
    }
}
