using TorchSharp;
using TorchSharp.Modules;
using WinTok.Checkpoints;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// The frozen SigLIP teacher of WinTok's distillation loss (reference examples/train_tokenizer/trainer.py: a
// transformers SiglipVisionModel loaded from args.model, eval, no grad, MAP head kept). Its pooler_output is the target
// the student's pooled semantic tokens are cosine-distilled to. The tower reuses Siglip.cs; the MAP head is HF's
// SiglipMultiheadAttentionPoolingHead (modeling_siglip.py), whose attention is a torch nn.MultiheadAttention.

/// <summary>
/// The MAP head's attention (torch <c>nn.MultiheadAttention</c>, batch first, biases on). Written as separate q/k/v
/// projections plus SDPA (torchsharp.md §2): TorchSharp's MultiheadAttention is libtorch's C++ module without the SDPA
/// path. The checkpoint's packed <c>in_proj_weight</c>/<c>in_proj_bias</c> are split at load
/// (<see cref="SiglipTeacher.FromHfStateDict"/>).
/// </summary>
internal sealed class SiglipPoolingAttention : nn.Module
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;
    private readonly int heads;

    public SiglipPoolingAttention(int hidden, int heads) : base(nameof(SiglipPoolingAttention))
    {
        this.heads = heads;
        q_proj = nn.Linear(hidden, hidden);
        k_proj = nn.Linear(hidden, hidden);
        v_proj = nn.Linear(hidden, hidden);
        out_proj = nn.Linear(hidden, hidden);
        RegisterComponents();
    }

    /// <summary>Queries (B, Q, D) attending over keys/values (B, T, D) -> (B, Q, D); scale head_dim^-0.5, no mask.</summary>
    public Tensor Forward(Tensor query, Tensor memory)
    {
        using var scope = NewDisposeScope();
        var (b, q, t, d) = (query.shape[0], query.shape[1], memory.shape[1], query.shape[2]);
        Tensor Heads(Tensor y, long length) => y.view(b, length, heads, d / heads).transpose(1, 2); // (B, H, len, hd)
        var kernels = InferenceKernels.Torch;
        var attended = F.scaled_dot_product_attention(
            Heads(Dense.Forward(q_proj, query, kernels), q),
            Heads(Dense.Forward(k_proj, memory, kernels), t),
            Heads(Dense.Forward(v_proj, memory, kernels), t));
        return Dense.Forward(out_proj, attended.transpose(1, 2).reshape(b, q, d), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>SiglipMultiheadAttentionPoolingHead</c>: a learned probe attends over the tokens, then LN + MLP residual.</summary>
internal sealed class SiglipMultiheadAttentionPoolingHead : nn.Module<Tensor, Tensor>
{
    private readonly Parameter probe; // (1, 1, D)
    private readonly SiglipPoolingAttention attention;
    private readonly LayerNorm layernorm;
    private readonly SiglipMlp mlp;

    public SiglipMultiheadAttentionPoolingHead(int hidden, int heads, int intermediate, double eps)
        : base(nameof(SiglipMultiheadAttentionPoolingHead))
    {
        probe = new Parameter(randn(1, 1, hidden));
        attention = new SiglipPoolingAttention(hidden, heads);
        layernorm = nn.LayerNorm(hidden, eps);
        mlp = new SiglipMlp(hidden, intermediate);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) // (B, T, D) -> (B, D)
    {
        using var scope = NewDisposeScope();
        var pooled = attention.Forward(probe.expand(hidden.shape[0], -1, -1), hidden); // (B, 1, D)
        pooled = mlp.Forward(Norm.Forward(layernorm, pooled, InferenceKernels.Torch), residual: pooled);
        return pooled[.., 0].MoveToOuterDisposeScope();
    }
}

/// <summary>What the teacher computes for a batch (HF <c>SiglipVisionModel</c> outputs).</summary>
/// <param name="LastHiddenState">(B, L, D) after the post layer norm.</param>
/// <param name="PoolerOutput">(B, D) the MAP head's output: the distillation target.</param>
public sealed record TeacherOutput(Tensor LastHiddenState, Tensor PoolerOutput) : IDisposable
{
    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput.Dispose();
    }
}

/// <summary>
/// The frozen SigLIP vision tower with its MAP pooling head: the distillation teacher. Keys are HF's
/// (<c>vision_model.embeddings.*</c>, <c>vision_model.encoder.*</c>, <c>vision_model.post_layernorm.*</c>,
/// <c>vision_model.head.*</c>), except the head attention's packed in-projection, split into q/k/v at load.
/// </summary>
public sealed class SiglipTeacher : nn.Module
{
    private const string InProjWeight = "vision_model.head.attention.in_proj_weight";
    private const string InProjBias = "vision_model.head.attention.in_proj_bias";

    private readonly SiglipVisionTransformer vision_model;

    /// <summary>A teacher of the given tower shape with random weights; <see cref="FromHfStateDict"/> fills it.</summary>
    public SiglipTeacher(EncoderShape shape) : base(nameof(SiglipTeacher))
    {
        ArgumentNullException.ThrowIfNull(shape);
        var problems = shape.Problems("teacher").ToList();
        if (problems.Count > 0) throw new ArgumentException("Impossible SigLIP teacher: " + string.Join("; ", problems));
        Shape = shape;
        vision_model = new SiglipVisionTransformer(shape.Layers, shape.HiddenSize, shape.Heads, shape.IntermediateSize,
            shape.LayerNormEps, shape, withHead: true);
        RegisterComponents();
        Freeze();
    }

    public EncoderShape Shape { get; }

    /// <summary>
    /// Builds the teacher from an HF SigLIP state dict: a <c>SiglipVisionModel</c>'s or a whole <c>SiglipModel</c>'s,
    /// whose <c>text_model.*</c> and logit entries are ignored as <c>from_pretrained</c> ignores them. Every
    /// <c>vision_model.*</c> key must fit (strict); a missing or misshaped tensor fails naming it.
    /// </summary>
    public static SiglipTeacher FromHfStateDict(IReadOnlyDictionary<string, Tensor> stateDict, EncoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var teacher = new SiglipTeacher(shape);
        try
        {
            using var scope = NewDisposeScope();
            var vision = stateDict.Where(pair => pair.Key.StartsWith("vision_model.", StringComparison.Ordinal))
                .ToDictionary(pair => pair.Key, pair => pair.Value);
            SplitInProjection(vision, shape.HiddenSize);
            var result = StateDictLoader.Load(teacher, vision, strict: false);
            if (!result.IsExactMatch)
            {
                // Name what the file lacks in the file's terms: the packed in-projection, not our q/k/v split.
                var missing = result.Missing.Select(FileKey).Distinct().ToList();
                throw new CheckpointMismatchException(missing, result.Unexpected, result.Misshaped);
            }
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
        return teacher;
    }

    /// <summary>Reads the teacher from a safetensors or .pth file holding an HF SigLIP state dict.</summary>
    public static SiglipTeacher Load(string path, EncoderShape shape)
    {
        using var checkpoint = CheckpointFile.Read(path);
        return FromHfStateDict(checkpoint.StateDict, shape);
    }

    /// <summary>Pixels in SigLIP's convention (WinTok's <see cref="WinTokModel.ScaleForSiglip"/> of the batch) to both outputs.</summary>
    public TeacherOutput Forward(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var hidden = vision_model.Encode(vision_model.Embed(pixelValues)); // (B, L, D)
        var pooled = vision_model.Pool(hidden);                             // (B, D)
        return new TeacherOutput(hidden.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }

    /// <summary>The distillation target (B, D) alone.</summary>
    public Tensor PoolerOutput(Tensor pixelValues)
    {
        using var output = Forward(pixelValues);
        return output.PoolerOutput.clone();
    }

    private static string FileKey(string key)
    {
        const string prefix = "vision_model.head.attention.";
        foreach (var part in new[] { "q_proj.", "k_proj.", "v_proj." })
            if (key.StartsWith(prefix + part, StringComparison.Ordinal))
                return key.EndsWith(".weight", StringComparison.Ordinal) ? InProjWeight : InProjBias;
        return key;
    }

    private void Freeze()
    {
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }

    /// <summary>Replaces the packed (3D, D) in-projection with q/k/v entries (torch packs them in that order).</summary>
    private static void SplitInProjection(Dictionary<string, Tensor> vision, int hidden)
    {
        const string prefix = "vision_model.head.attention.";
        if (vision.Remove(InProjWeight, out var weight))
        {
            if (weight.dim() != 2 || weight.shape[0] != 3L * hidden || weight.shape[1] != hidden)
                throw new CheckpointMismatchException([], [], [new MisshapedTensor(InProjWeight, [3L * hidden, hidden], weight.shape)]);
            var parts = weight.chunk(3, 0);
            (vision[prefix + "q_proj.weight"], vision[prefix + "k_proj.weight"], vision[prefix + "v_proj.weight"]) = (parts[0], parts[1], parts[2]);
        }
        if (vision.Remove(InProjBias, out var bias))
        {
            if (bias.dim() != 1 || bias.shape[0] != 3L * hidden)
                throw new CheckpointMismatchException([], [], [new MisshapedTensor(InProjBias, [3L * hidden], bias.shape)]);
            var parts = bias.chunk(3, 0);
            (vision[prefix + "q_proj.bias"], vision[prefix + "k_proj.bias"], vision[prefix + "v_proj.bias"]) = (parts[0], parts[1], parts[2]);
        }
    }
}
