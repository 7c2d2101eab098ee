using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// SigLIP vision blocks (HF transformers modeling_siglip.py: SiglipAttention, SiglipMLP, SiglipEncoderLayer,
// SiglipEncoder, SiglipVisionEmbeddings, SiglipVisionTransformer, SiglipVisionModel). WinTok uses them for its encoder
// and, without embeddings, for its SigLIP2-style decoder; field names are the HF state_dict keys.

/// <summary>SigLIP multi-head self-attention (no mask, scale head_dim^-0.5).</summary>
internal sealed class SiglipAttention : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear q_proj;
    private readonly Linear out_proj;
    private readonly int heads;
    private InferenceKernels kernels = InferenceKernels.Torch;
    private FusedQkv? fused; // derived from q/k/v for inference; a plain holder so it never joins the state_dict

    public SiglipAttention(int hidden, int heads) : base(nameof(SiglipAttention))
    {
        this.heads = heads;
        k_proj = nn.Linear(hidden, hidden);
        v_proj = nn.Linear(hidden, hidden);
        q_proj = nn.Linear(hidden, hidden);
        out_proj = nn.Linear(hidden, hidden);
        RegisterComponents();
    }

    /// <summary>
    /// Concatenates q/k/v into one projection for inference: same products, one GEMM launch, better tensor-core
    /// occupancy. Only used without autograd; the weights must not change afterwards (see <see cref="ResetForTraining"/>).
    /// </summary>
    public void PrepareForInference(InferenceKernels kernels)
    {
        ResetForTraining();
        this.kernels = kernels;
        using var noGrad = no_grad();
        fused = new FusedQkv(cat([q_proj.weight!, k_proj.weight!, v_proj.weight!]).DetachFromDisposeScope(),
            cat([q_proj.bias!, k_proj.bias!, v_proj.bias!]).DetachFromDisposeScope());
    }

    internal bool IsFused => fused is not null;

    public void ResetForTraining()
    {
        fused?.Weight.Dispose();
        fused?.Bias.Dispose();
        fused = null;
        kernels = InferenceKernels.Torch;
    }

    public override Tensor forward(Tensor x) => Forward(x, residual: null);

    /// <summary><c>residual + attention(x)</c>, the residual added in the output projection's epilogue.</summary>
    public Tensor Forward(Tensor x, Tensor? residual) // (B, T, D) -> (B, T, D)
    {
        using var scope = NewDisposeScope();
        var (b, t, d) = (x.shape[0], x.shape[1], x.shape[2]);
        Tensor q, k, v;
        if (fused is not null && !is_grad_enabled())
        {
            var packed = Dense.Forward(x, fused.Weight, fused.Bias, kernels).view(b, t, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
            (q, k, v) = (packed[0], packed[1], packed[2]);                      // each (B, H, T, hd)
        }
        else
        {
            Tensor Heads(Tensor y) => y.view(b, t, heads, d / heads).transpose(1, 2); // (B, H, T, hd)
            (q, k, v) = (Heads(Dense.Forward(q_proj, x, kernels)), Heads(Dense.Forward(k_proj, x, kernels)), Heads(Dense.Forward(v_proj, x, kernels)));
        }
        var attended = F.scaled_dot_product_attention(q, k, v);
        return Dense.Forward(out_proj, attended.transpose(1, 2).reshape(b, t, d), kernels, residual).MoveToOuterDisposeScope();
    }

    private sealed record FusedQkv(Tensor Weight, Tensor Bias); // (3D, D), (3D)
}

/// <summary>SigLIP MLP: fc1, tanh-approximated GELU, fc2.</summary>
internal sealed class SiglipMlp : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public SiglipMlp(int hidden, int intermediate) : base(nameof(SiglipMlp))
    {
        fc1 = nn.Linear(hidden, intermediate);
        fc2 = nn.Linear(intermediate, hidden);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x) => Forward(x, residual: null);

    /// <summary><c>residual + fc2(gelu(fc1(x)))</c>, the GELU and the residual in the GEMMs' epilogues.</summary>
    public Tensor Forward(Tensor x, Tensor? residual)
    {
        using var scope = NewDisposeScope();
        return Dense.Forward(fc2, Dense.Forward(fc1, x, kernels, gelu: true), kernels, residual).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-LN encoder layer, shared by the SigLIP encoder and the SigLIP2-style decoder.</summary>
internal sealed class SiglipEncoderLayer : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly LayerNorm layer_norm1;
    private readonly SiglipAttention self_attn;
    private readonly LayerNorm layer_norm2;
    private readonly SiglipMlp mlp;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public SiglipEncoderLayer(int hidden, int heads, int intermediate, double eps) : base(nameof(SiglipEncoderLayer))
    {
        layer_norm1 = nn.LayerNorm(hidden, eps);
        self_attn = new SiglipAttention(hidden, heads);
        layer_norm2 = nn.LayerNorm(hidden, eps);
        mlp = new SiglipMlp(hidden, intermediate);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor hidden) // (B, T, D) -> (B, T, D)
    {
        using var scope = NewDisposeScope();
        hidden = self_attn.Forward(Norm.Forward(layer_norm1, hidden, kernels), residual: hidden);
        hidden = mlp.Forward(Norm.Forward(layer_norm2, hidden, kernels), residual: hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>A stack of encoder layers (HF <c>SiglipEncoder</c>; key <c>layers.{i}</c>).</summary>
internal sealed class SiglipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<SiglipEncoderLayer> layers;

    public SiglipEncoder(int depth, int hidden, int heads, int intermediate, double eps) : base(nameof(SiglipEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, depth).Select(_ => new SiglipEncoderLayer(hidden, heads, intermediate, eps)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = input;
        foreach (var layer in layers)
        {
            var next = layer.call(hidden);
            // Release each layer's output once the next exists (autograd keeps what it saved): the batch then needs
            // two activations at a time instead of one per layer, and the allocator hands the same blocks round.
            if (!ReferenceEquals(hidden, input)) hidden.Dispose();
            hidden = next;
        }
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>Patch embedding plus learned positions (HF <c>SiglipVisionEmbeddings</c>, no interpolation).</summary>
internal sealed class SiglipVisionEmbeddings : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
    private readonly int patch;
    private InferenceKernels kernels = InferenceKernels.Torch;
    private bool patchesAsGemm; // set when prepared for serving

    public SiglipVisionEmbeddings(EncoderShape shape) : base(nameof(SiglipVisionEmbeddings))
    {
        patch = shape.PatchSize;
        patch_embedding = nn.Conv2d(3, shape.HiddenSize, shape.PatchSize, stride: shape.PatchSize);
        position_embedding = nn.Embedding(shape.NumPatches, shape.HiddenSize);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels)
    {
        this.kernels = kernels;
        patchesAsGemm = true;
    }

    public void ResetForTraining()
    {
        kernels = InferenceKernels.Torch;
        patchesAsGemm = false;
    }

    public override Tensor forward(Tensor pixels) // (B, 3, H, W) -> (B, L, D)
    {
        using var scope = NewDisposeScope();
        // position_ids is arange(L), a non-persistent buffer in HF: the lookup is the whole table.
        if (!patchesAsGemm)
        {
            // The reference's convolution, op for op: training and its parity tests get PyTorch's exact numbers
            // (forward and gradients), which the GEMM below only matches to float32 rounding.
            return (Conv.Forward(patch_embedding, pixels).flatten(2).transpose(1, 2) + position_embedding.weight!).MoveToOuterDisposeScope();
        }
        // Serving: a stride-p p x p convolution is a linear layer over non-overlapping patches; as a GEMM it runs at
        // matmul speed, where cuDNN's convolution kernels for this shape took several ms per batch of 128 on the H100.
        var (b, c, h, w) = (pixels.shape[0], pixels.shape[1], pixels.shape[2] / patch, pixels.shape[3] / patch);
        var rows = pixels.view(b, c, h, patch, w, patch).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c * patch * patch); // (c, kh, kw) order
        var kernel = patch_embedding.weight!;
        var patches = Dense.Forward(rows, kernel.view(kernel.shape[0], -1), patch_embedding.bias, kernels);
        return (patches + position_embedding.weight!).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// HF <c>SiglipVisionTransformer</c>. WinTok's encoder has no MAP head (the reference sets <c>head = None</c>); the
/// decoder reuses it without embeddings, as the reference sets <c>decoder.vision_model.embeddings = None</c>; the
/// frozen distillation teacher has both (<see cref="SiglipTeacher"/>).
/// </summary>
internal sealed class SiglipVisionTransformer : nn.Module, IInferenceModule
{
    private readonly SiglipVisionEmbeddings? embeddings;
    private readonly SiglipEncoder encoder;
    private readonly LayerNorm post_layernorm;
    private readonly SiglipMultiheadAttentionPoolingHead? head;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public SiglipVisionTransformer(int depth, int hidden, int heads, int intermediate, double eps, EncoderShape? withEmbeddings, bool withHead = false)
        : base(nameof(SiglipVisionTransformer))
    {
        if (withEmbeddings is not null) embeddings = new SiglipVisionEmbeddings(withEmbeddings);
        encoder = new SiglipEncoder(depth, hidden, heads, intermediate, eps);
        post_layernorm = nn.LayerNorm(hidden, eps);
        if (withHead) head = new SiglipMultiheadAttentionPoolingHead(hidden, heads, intermediate, eps);
        RegisterComponents();
    }

    /// <summary>The MAP head's pooled output (B, D) of post-norm tokens (B, T, D): HF's <c>pooler_output</c>.</summary>
    public Tensor Pool(Tensor hidden) => (head ?? throw new InvalidOperationException("This tower has no pooling head")).call(hidden);

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public Tensor Embed(Tensor pixels) => embeddings!.call(pixels);

    /// <summary>Encoder layers then the post layer norm, on already embedded tokens.</summary>
    public Tensor Encode(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        return Norm.Forward(post_layernorm, encoder.call(tokens), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>Holds <c>vision_model</c>, as HF's <c>SiglipVisionModel</c> does, so keys read <c>encoder.vision_model.*</c>.</summary>
internal sealed class SiglipVisionModel : nn.Module
{
    private readonly SiglipVisionTransformer vision_model;

    public SiglipVisionModel(SiglipVisionTransformer visionModel) : base(nameof(SiglipVisionModel))
    {
        vision_model = visionModel;
        RegisterComponents();
    }

    public SiglipVisionTransformer VisionModel => vision_model;
}
