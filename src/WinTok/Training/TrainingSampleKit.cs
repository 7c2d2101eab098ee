using System.Text.Json;
using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>The files <see cref="TrainingSampleKit.Write"/> made.</summary>
/// <param name="TeacherFolder">An HF SigLIP vision folder: <c>config.json</c> and <c>model.safetensors</c> (MAP head included).</param>
/// <param name="Dino">A DINOv2 state dict in the reference's key layout (<c>dinov2_vits14_pretrain.pth</c>'s).</param>
/// <param name="Architecture">The WinTok arguments (reference names) of the tiny network the kit is made for.</param>
public sealed record TrainingKitFiles(string TeacherFolder, string Dino, IReadOnlyDictionary<string, object?> Architecture);

/// <summary>
/// Tiny stand-ins for the networks a training run reads, to try <c>wintok train</c> without downloading SigLIP2 and
/// DINOv2 (and for tests): a 2-layer, 64-wide SigLIP teacher on 64-pixel images, and a 12-block, 64-wide DINOv2 whose
/// one head per block is DINOv2's 64 wide. Their weights follow a fixed formula (no random numbers), so the kit is the
/// same bytes on every machine. They know nothing: a run on them shows the machinery, not a tokenizer.
/// </summary>
public static class TrainingSampleKit
{
    /// <summary>The teacher (and encoder) shape: 64-pixel images in 8-pixel patches.</summary>
    public static EncoderShape Encoder { get; } = new(HiddenSize: 64, Layers: 2, Heads: 4, IntermediateSize: 128, PatchSize: 8, ImageSize: 64);

    /// <summary>A DINOv2 of the reference's depth (its key depths reach block 11) at a sixth of ViT-S's width.</summary>
    public static DinoConfig Dino { get; } = new(EmbedDim: 64, Depth: 12, Heads: 1);

    public static TrainingKitFiles Write(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var teacherFolder = Path.Combine(folder, "siglip-tiny");
        Directory.CreateDirectory(teacherFolder);
        File.WriteAllText(Path.Combine(teacherFolder, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model_type"] = "siglip_vision_model",
            ["architectures"] = new[] { "SiglipVisionModel" },
            ["hidden_size"] = Encoder.HiddenSize,
            ["intermediate_size"] = Encoder.IntermediateSize,
            ["num_hidden_layers"] = Encoder.Layers,
            ["num_attention_heads"] = Encoder.Heads,
            ["num_channels"] = 3,
            ["image_size"] = Encoder.ImageSize,
            ["patch_size"] = Encoder.PatchSize,
            ["hidden_act"] = "gelu_pytorch_tanh",
            ["layer_norm_eps"] = Encoder.LayerNormEps,
        }, new JsonSerializerOptions { WriteIndented = true }));
        using (var scope = NewDisposeScope())
        {
            using var teacher = new SiglipTeacher(Encoder);
            var weights = Formula(teacher.state_dict());
            PackHeadProjection(weights);
            Safetensors.Write(Path.Combine(teacherFolder, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var dino = Path.Combine(folder, "dinov2-tiny.safetensors");
        using (var scope = NewDisposeScope())
        {
            using var backbone = new DinoVisionTransformer(Dino);
            Safetensors.Write(dino, Formula(backbone.state_dict()), new Dictionary<string, string> { ["format"] = "pt" });
        }
        var architecture = new Dictionary<string, object?>
        {
            ["img_size"] = (long)Encoder.ImageSize,
            ["num_latent_tokens"] = 4L,
            ["vocab_size"] = 256L,
            ["vocab_width"] = 16L,
            ["num_codebooks"] = 4L,
            ["decoder_rec_depth"] = 2L,
            ["decoder_rec_num_heads"] = 4L,
            ["decoder_rec_hidden_size"] = 64L,
            ["decoder_rec_intermediate_size"] = 128L,
        };
        return new TrainingKitFiles(teacherFolder, dino, architecture);
    }

    /// <summary>
    /// Values by the tests' formula (tests/fixtures/training/README.md): for the k-th tensor, element i,
    /// <c>s = sin(0.1 + 0.37 (i mod 10007) + 1.7 k)</c>; norm and LayerScale weights <c>1 + 0.1 s</c>, other vectors
    /// <c>0.05 s</c>, everything else <c>s sqrt(3 / fan_in)</c>.
    /// </summary>
    private static Dictionary<string, Tensor> Formula(Dictionary<string, Tensor> stateDict)
    {
        var result = new Dictionary<string, Tensor>();
        var k = 0;
        foreach (var (name, like) in stateDict)
        {
            var unit = like.dim() == 1 && (name.EndsWith("gamma", StringComparison.Ordinal)
                || (name.EndsWith(".weight", StringComparison.Ordinal) && name.Contains("norm", StringComparison.Ordinal)));
            var rule = like.dim() >= 2 ? "s*sqrt(3/fan_in)" : unit ? "1+0.1*s" : "0.05*s";
            result[name] = tensor(FormulaWeights.Values(like.shape, k, rule)).reshape(like.shape);
            k++;
        }
        return result;
    }

    /// <summary>HF keeps the MAP head's attention as one packed <c>nn.MultiheadAttention</c> in-projection.</summary>
    private static void PackHeadProjection(Dictionary<string, Tensor> weights)
    {
        const string prefix = "vision_model.head.attention.";
        foreach (var kind in new[] { "weight", "bias" })
        {
            var parts = new[] { "q_proj", "k_proj", "v_proj" }.Select(p => weights[$"{prefix}{p}.{kind}"]).ToArray();
            foreach (var p in new[] { "q_proj", "k_proj", "v_proj" }) weights.Remove($"{prefix}{p}.{kind}");
            weights[$"{prefix}in_proj_{kind}"] = cat(parts, 0);
        }
    }
}
