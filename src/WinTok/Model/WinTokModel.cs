using TorchSharp;
using TorchSharp.Modules;
using WinTok.Cuda;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// WinTok: a hybrid visual tokenizer (arXiv 2605.18115; reference github.com/markywg/WinTok @ eb0452e, models/wintok.py
// and models/modules/quant.py). A SigLIP ViT encoder reads the image patches followed by N learnable semantic tokens.
// The patch outputs go through an attention projection and a multi-codebook cosine VQ (discrete pixel tokens) and are
// decoded to pixels by a SigLIP2-style ViT decoder; the semantic outputs become continuous semantic tokens.
//
// Every field below carries the name of the reference's state_dict key, so a checkpoint loads by a checked key-by-key
// copy. Blocks come bottom-up: SigLIP blocks, attention projection, quantizer, then the model.

/// <summary>
/// Linear layers as this model runs them. On the CPU and under autograd: <c>addmm</c> on a 2-D view, which is what
/// PyTorch's <c>at::linear</c> does (TorchSharp's <c>functional.linear</c> is the C++ frontend's, which adds the bias in
/// a separate pass for 3-D inputs), then the optional tanh-GELU and residual add as separate ops. At bf16/fp16 inference
/// on CUDA: one cuBLASLt call with the bias, GELU and residual in its epilogue (<see cref="CublasLtLinear"/>).
/// </summary>
internal static class Dense
{
    public static Tensor Forward(Linear layer, Tensor x, Tensor? residual = null, bool gelu = false) =>
        Forward(x, layer.weight!, layer.bias, residual, gelu);

    /// <summary><c>residual + act(x W^T + b)</c> for x (..., in), W (out, in), b (out); act is tanh-GELU or identity.</summary>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null, bool gelu = false)
    {
        if (x.device_type == DeviceType.CUDA && CublasLtLinear.Shared is { } fused
            && fused.TryForward(x, weight, bias, residual, gelu, out var output))
            return output;
        using var scope = NewDisposeScope();
        var rows = x.reshape(-1, weight.shape[1]);
        var product = bias is null ? rows.mm(weight.t()) : addmm(bias, rows, weight.t(), beta: 1, alpha: 1);
        var shape = x.shape.ToArray();
        shape[^1] = weight.shape[0];
        var y = product.view(shape);
        if (gelu) y = F.gelu(y, GELU.Approximate.tanh);
        if (residual is not null) y = residual + y;
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// LayerNorm as this model runs it: torch's module, except at bf16 inference on CUDA, where one kernel of ours does it
/// at memory speed (<see cref="FusedLayerNorm"/>).
/// </summary>
internal static class Norm
{
    public static Tensor Forward(LayerNorm norm, Tensor x) =>
        x.device_type == DeviceType.CUDA && FusedLayerNorm.Shared is { } fused && fused.TryForward(x, norm.weight!, norm.bias!, norm.eps, out var y)
            ? y
            : norm.call(x);
}

/// <summary>
/// A module that derives inference-only weights from its parameters (fused or folded projections). They are built by
/// <see cref="WinTokModel.PrepareForInference"/>, used only without autograd, and dropped when training resumes.
/// </summary>
internal interface IInferenceFusion
{
    void Fuse();
    void Unfuse();
}

/// <summary>SigLIP multi-head self-attention (HF <c>SiglipAttention</c>; no mask, scale head_dim^-0.5).</summary>
internal sealed class SiglipAttention : nn.Module<Tensor, Tensor>, IInferenceFusion
{
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear q_proj;
    private readonly Linear out_proj;
    private readonly int heads;
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
    /// occupancy. Only used without autograd; the weights must not change afterwards (see <see cref="Unfuse"/>).
    /// </summary>
    public void Fuse()
    {
        Unfuse();
        using var noGrad = no_grad();
        fused = new FusedQkv(cat([q_proj.weight!, k_proj.weight!, v_proj.weight!]).DetachFromDisposeScope(),
            cat([q_proj.bias!, k_proj.bias!, v_proj.bias!]).DetachFromDisposeScope());
    }

    internal bool IsFused => fused is not null;

    public void Unfuse()
    {
        fused?.Weight.Dispose();
        fused?.Bias.Dispose();
        fused = null;
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
            var packed = Dense.Forward(x, fused.Weight, fused.Bias).view(b, t, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
            (q, k, v) = (packed[0], packed[1], packed[2]);                      // each (B, H, T, hd)
        }
        else
        {
            Tensor Heads(Tensor y) => y.view(b, t, heads, d / heads).transpose(1, 2); // (B, H, T, hd)
            (q, k, v) = (Heads(Dense.Forward(q_proj, x)), Heads(Dense.Forward(k_proj, x)), Heads(Dense.Forward(v_proj, x)));
        }
        var attended = F.scaled_dot_product_attention(q, k, v);
        return Dense.Forward(out_proj, attended.transpose(1, 2).reshape(b, t, d), residual).MoveToOuterDisposeScope();
    }

    private sealed record FusedQkv(Tensor Weight, Tensor Bias); // (3D, D), (3D)
}

/// <summary>SigLIP MLP: fc1, tanh-approximated GELU, fc2.</summary>
internal sealed class SiglipMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public SiglipMlp(int hidden, int intermediate) : base(nameof(SiglipMlp))
    {
        fc1 = nn.Linear(hidden, intermediate);
        fc2 = nn.Linear(intermediate, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, residual: null);

    /// <summary><c>residual + fc2(gelu(fc1(x)))</c>, the GELU and the residual in the GEMMs' epilogues.</summary>
    public Tensor Forward(Tensor x, Tensor? residual)
    {
        using var scope = NewDisposeScope();
        return Dense.Forward(fc2, Dense.Forward(fc1, x, gelu: true), residual).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-LN encoder layer, shared by the SigLIP encoder and the SigLIP2-style decoder.</summary>
internal sealed class SiglipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm layer_norm1;
    private readonly SiglipAttention self_attn;
    private readonly LayerNorm layer_norm2;
    private readonly SiglipMlp mlp;

    public SiglipEncoderLayer(int hidden, int heads, int intermediate, double eps) : base(nameof(SiglipEncoderLayer))
    {
        layer_norm1 = nn.LayerNorm(hidden, eps);
        self_attn = new SiglipAttention(hidden, heads);
        layer_norm2 = nn.LayerNorm(hidden, eps);
        mlp = new SiglipMlp(hidden, intermediate);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) // (B, T, D) -> (B, T, D)
    {
        using var scope = NewDisposeScope();
        hidden = self_attn.Forward(Norm.Forward(layer_norm1, hidden), residual: hidden);
        hidden = mlp.Forward(Norm.Forward(layer_norm2, hidden), residual: hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>A stack of encoder layers (HF <c>SiglipEncoder</c>; key <c>layers.{i}</c>).</summary>
internal sealed class SiglipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<SiglipEncoderLayer> layers;

    internal IReadOnlyList<SiglipEncoderLayer> Layers => layers.ToArray();

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
internal sealed class SiglipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
    private readonly int patch;

    public SiglipVisionEmbeddings(EncoderShape shape) : base(nameof(SiglipVisionEmbeddings))
    {
        patch = shape.PatchSize;
        patch_embedding = nn.Conv2d(3, shape.HiddenSize, shape.PatchSize, stride: shape.PatchSize);
        position_embedding = nn.Embedding(shape.NumPatches, shape.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels) // (B, 3, H, W) -> (B, L, D)
    {
        using var scope = NewDisposeScope();
        // A stride-p p x p convolution is a linear layer over non-overlapping patches; as a GEMM it runs at matmul
        // speed, where cuDNN's convolution kernels for this shape took several ms per batch of 128 on the H100.
        var (b, c, h, w) = (pixels.shape[0], pixels.shape[1], pixels.shape[2] / patch, pixels.shape[3] / patch);
        var rows = pixels.view(b, c, h, patch, w, patch).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c * patch * patch); // (c, kh, kw) order
        var kernel = patch_embedding.weight!;
        var patches = Dense.Forward(rows, kernel.view(kernel.shape[0], -1), patch_embedding.bias);
        // position_ids is arange(L), a non-persistent buffer in HF: the lookup is the whole table.
        return (patches + position_embedding.weight!).MoveToOuterDisposeScope();
    }

    /// <summary>The same embedding through the convolution module, for `wintok bench layers`.</summary>
    internal Tensor ForwardAsConvolution(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = patch_embedding.call(pixels).flatten(2).transpose(1, 2);
        return (patches + position_embedding.weight!).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// HF <c>SiglipVisionTransformer</c> without its MAP head (the reference sets <c>head = None</c>). The decoder reuses it
/// without embeddings, as the reference sets <c>decoder.vision_model.embeddings = None</c>.
/// </summary>
internal sealed class SiglipVisionTransformer : nn.Module
{
    private readonly SiglipVisionEmbeddings? embeddings;
    private readonly SiglipEncoder encoder;
    private readonly LayerNorm post_layernorm;

    public SiglipVisionTransformer(int depth, int hidden, int heads, int intermediate, double eps, EncoderShape? withEmbeddings)
        : base(nameof(SiglipVisionTransformer))
    {
        if (withEmbeddings is not null) embeddings = new SiglipVisionEmbeddings(withEmbeddings);
        encoder = new SiglipEncoder(depth, hidden, heads, intermediate, eps);
        post_layernorm = nn.LayerNorm(hidden, eps);
        RegisterComponents();
    }

    public Tensor Embed(Tensor pixels) => embeddings!.call(pixels);

    internal SiglipVisionEmbeddings Embeddings => embeddings!;

    internal SiglipEncoder Encoder => encoder;

    /// <summary>Encoder layers then the post layer norm, on already embedded tokens.</summary>
    public Tensor Encode(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        return Norm.Forward(post_layernorm, encoder.call(tokens)).MoveToOuterDisposeScope();
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

/// <summary>Attention of the projection (reference <c>PlainAttention</c>): qkv without bias, separate q and v biases.</summary>
internal sealed class PlainAttention : nn.Module<Tensor, Tensor>, IInferenceFusion
{
    private readonly Linear qkv;
    private readonly Parameter q_bias;
    private readonly Parameter v_bias;
    private readonly Tensor zero_k_bias; // a persistent buffer of zeros in the reference checkpoint
    private readonly Linear proj;
    private readonly int inDim;
    private readonly int outDim;
    private readonly int heads;
    private FoldedQkv? folded; // inference-only, a plain holder so it never joins the state_dict

    public PlainAttention(int inDim, int outDim, int heads) : base(nameof(PlainAttention))
    {
        (this.inDim, this.outDim, this.heads) = (inDim, outDim, heads);
        var wide = Math.Max(inDim, outDim);
        qkv = nn.Linear(inDim, wide * 3, hasBias: false);
        q_bias = new Parameter(zeros(wide));
        v_bias = new Parameter(zeros(wide));
        zero_k_bias = zeros(wide);
        proj = nn.Linear(outDim, outDim);
        RegisterComponents();
    }

    /// <summary>
    /// When projecting down, folds the head mean and the width pooling into the value projection. Both are linear maps
    /// applied after the attention weights, so they commute with them: mean_h(A_h V_h) P = mean_h(A_h (V_h P)), with P
    /// the (head width, out) pooling matrix. The value projection then produces heads x out channels instead of wide
    /// (128 instead of 1,152 for 1,152 -> 32 with 4 heads), a third less float32 GEMM work; the results are the same up
    /// to float32 rounding order.
    /// </summary>
    public void Fuse()
    {
        Unfuse();
        if (inDim <= outDim || heads * outDim >= inDim) return; // nothing to save (or pooling that widens)
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (wide, width) = (inDim, inDim / heads);
        var weight = qkv.weight!;                                                        // (3 wide, in): q, k, v rows
        // Row j of P is the pooled unit vector e_j: adaptive pooling is linear, so pooling the identity gives its matrix.
        var pool = F.adaptive_avg_pool1d(eye(width, dtype: weight.dtype, device: weight.device).unsqueeze(0), outDim)[0]; // (hd, out)
        var values = matmul(pool.t(), weight.narrow(0, 2 * wide, wide).view(heads, width, inDim));           // (H, out, in)
        var valueBias = matmul(v_bias.view(heads, 1, width), pool);                                          // (H, 1, out)
        folded = new FoldedQkv(
            cat([weight.narrow(0, 0, 2 * wide), values.reshape(heads * outDim, inDim)]).DetachFromDisposeScope(),
            cat([q_bias, zero_k_bias, valueBias.reshape(heads * outDim)]).DetachFromDisposeScope());
    }

    internal bool IsFused => folded is not null;

    public void Unfuse()
    {
        folded?.Weight.Dispose();
        folded?.Bias.Dispose();
        folded = null;
    }

    public override Tensor forward(Tensor x) // (B, N, in) -> (B, N, out)
    {
        using var scope = NewDisposeScope();
        var (b, n) = (x.shape[0], x.shape[1]);
        var wide = Math.Max(inDim, outDim);
        if (folded is not null && !is_grad_enabled())
        {
            var projected = Dense.Forward(x, folded.Weight, folded.Bias);                // (B, N, 2 wide + H out)
            Tensor Heads(Tensor y, int width) => y.view(b, n, heads, width).transpose(1, 2);
            var (width, pooledWidth) = (wide / heads, outDim);
            var q = Heads(projected.narrow(2, 0, wide), width);
            var k = Heads(projected.narrow(2, wide, wide), width);
            var v = Heads(projected.narrow(2, 2 * wide, heads * pooledWidth), pooledWidth);
            // The scale stays 1/sqrt(head width): scaled_dot_product_attention takes it from q.
            return Dense.Forward(proj, F.scaled_dot_product_attention(q, k, v).mean([1])).MoveToOuterDisposeScope();
        }
        var bias = cat([q_bias, zero_k_bias, v_bias]);
        var packed = Dense.Forward(x, qkv.weight!, bias).reshape(b, n, 3, heads, wide / heads).permute(2, 0, 3, 1, 4);
        var attended = F.scaled_dot_product_attention(packed[0], packed[1], packed[2]); // (B, H, N, hd)
        Tensor merged;
        if (inDim > outDim)
        {
            // Projecting down: average the heads, then pool the head width to out_dim when they differ
            // (for 1152 -> 32 with 4 heads: the mean of 9 consecutive channels).
            merged = attended.mean([1]);
            if (wide / heads != outDim) merged = F.adaptive_avg_pool1d(merged, outDim);
        }
        else
        {
            merged = attended.transpose(1, 2).reshape(b, n, -1);
        }
        return Dense.Forward(proj, merged).MoveToOuterDisposeScope();
    }

    private sealed record FoldedQkv(Tensor Weight, Tensor Bias); // (2 wide + H out, in), (2 wide + H out)
}

/// <summary>Gated GELU MLP with its own pre-norm (timm LayerNorm, eps 1e-6).</summary>
internal sealed class GeGluMlp : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear w0;
    private readonly Linear w1;
    private readonly Linear w2;

    public GeGluMlp(int features, int hidden) : base(nameof(GeGluMlp))
    {
        norm = nn.LayerNorm(features, 1e-6);
        w0 = nn.Linear(features, hidden);
        w1 = nn.Linear(features, hidden);
        w2 = nn.Linear(hidden, features);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var n = norm.call(x);
        return Dense.Forward(w2, Dense.Forward(w0, n, gelu: true) * Dense.Forward(w1, n)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Attention projection between the encoder width and the code width, both directions. Its layer norms keep torch's
/// default eps 1e-5, unlike every other norm of the model.
/// </summary>
internal sealed class AttnProjection : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly PlainAttention attn;
    private readonly Linear proj;
    private readonly LayerNorm norm3;
    private readonly LayerNorm norm2;
    private readonly GeGluMlp mlp;

    public AttnProjection(int inDim, int outDim, int heads) : base(nameof(AttnProjection))
    {
        norm1 = nn.LayerNorm(inDim, 1e-5);
        attn = new PlainAttention(inDim, outDim, heads);
        proj = nn.Linear(inDim, outDim);
        norm3 = nn.LayerNorm(inDim, 1e-5);
        norm2 = nn.LayerNorm(outDim, 1e-5);
        mlp = new GeGluMlp(outDim, 2 * outDim);
        RegisterComponents();
    }

    public ScalarType Dtype => proj.weight!.dtype;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x.to(Dtype); // the reference aligns the input with the projection's own precision
        var y = Dense.Forward(proj, norm3.call(x)) + attn.call(norm1.call(x));
        y = y + mlp.call(norm2.call(y));
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>One cosine codebook: unit-normalised code vectors, nearest code by cosine similarity.</summary>
internal sealed class VectorQuantizer : nn.Module
{
    private readonly Tensor vocab_usage; // persistent buffer: EMA of how often each code is chosen
    private readonly Embedding codebook;
    private readonly int size;
    private int usageRecordTimes; // a plain counter in the reference too: not saved, so resuming resets it

    public VectorQuantizer(int size, int width) : base(nameof(VectorQuantizer))
    {
        this.size = size;
        vocab_usage = zeros(size);
        codebook = nn.Embedding(size, width);
        RegisterComponents();
    }

    public Tensor NormalizedCodes() => F.normalize(codebook.weight!, p: 2, dim: 1).to(float32);

    /// <summary>Nearest code per row: (M, w) features -> (M) ids; ties go to the first maximum, as torch.argmax does.</summary>
    public Tensor Indices(Tensor features, Tensor codes)
    {
        using var scope = NewDisposeScope();
        return features.detach().matmul(codes.t()).argmax(1).MoveToOuterDisposeScope();
    }

    public Tensor Lookup(Tensor indices) => NormalizedCodes().index_select(0, indices.flatten());

    /// <summary>
    /// Training/encode forward of one chunk: (B, L, w) -> quantized (B, L, w), ids (B, L), VQ loss, entropy loss (or
    /// null), usage percentage; updates the usage buffer as the reference does on every forward, eval included.
    /// </summary>
    public (Tensor Quantized, Tensor Indices, Tensor VqLoss, Tensor? EntropyLoss, Tensor Usage) Quantize(
        Tensor chunk, double beta, double? inverseTemperature)
    {
        using var scope = NewDisposeScope();
        var (b, l, c) = (chunk.shape[0], chunk.shape[1], chunk.shape[2]);
        var features = F.normalize(chunk.reshape(-1, c), p: 2, dim: -1).to(float32);
        var codes = NormalizedCodes();
        var indices = Indices(features, codes);
        Tensor? entropy = inverseTemperature is { } inv ? EntropyLoss(features, codes, inv) : null;
        var quantized = codes.index_select(0, indices);

        var vqLoss = F.mse_loss(quantized.detach(), features) * beta + F.mse_loss(quantized, features.detach());
        // Straight-through estimator, written as the reference writes it so the forward value rounds identically.
        var straightThrough = (quantized.detach() - features.detach()) + features;

        var usage = UpdateUsage(indices);
        var outputs = (straightThrough.view(b, l, c), indices.view(b, l), vqLoss, entropy, usage);
        outputs.Item1.MoveToOuterDisposeScope();
        outputs.Item2.MoveToOuterDisposeScope();
        vqLoss.MoveToOuterDisposeScope();
        entropy?.MoveToOuterDisposeScope();
        usage.MoveToOuterDisposeScope();
        return outputs;
    }

    /// <summary>Per-sample entropy minus codebook entropy of softmax(-squared distance / temperature).</summary>
    private static Tensor EntropyLoss(Tensor features, Tensor codes, double inverseTemperature)
    {
        var distances = features.square().sum(1, keepdim: true) + codes.square().sum(1);
        distances = addmm(distances, features, codes.t(), beta: 1, alpha: -2); // (M, V)
        var logits = -(distances.to(float32) * inverseTemperature);
        var probabilities = logits.softmax(-1);
        var logProbabilities = logits.log_softmax(-1);
        var perSample = (-probabilities * logProbabilities).sum(-1).mean();
        var average = probabilities.mean([0]);
        var codebookEntropy = (-average * (average + 1e-7).log()).sum();
        return perSample - codebookEntropy;
    }

    private Tensor UpdateUsage(Tensor indices)
    {
        using var noGrad = no_grad();
        var chosen = indices.bincount(null, size).to(float32);
        chosen = chosen / chosen.sum();
        var usage = (chosen > 0.01 / size).to(float32).mean() * 100;
        if (usageRecordTimes == 0) vocab_usage.copy_(chosen);
        else if (usageRecordTimes < 100) vocab_usage.mul_(0.9).add_(chosen, alpha: 0.1);
        else vocab_usage.mul_(0.99).add_(chosen, alpha: 0.01);
        usageRecordTimes++;
        return usage;
    }
}

/// <summary>K cosine codebooks, each quantizing its own slice of the code vector (reference <c>VectorQuantizerM</c>).</summary>
internal sealed class VectorQuantizerM : nn.Module
{
    private readonly ModuleList<VectorQuantizer> codebooks;
    private readonly WinTokConfig config;

    public VectorQuantizerM(WinTokConfig config) : base(nameof(VectorQuantizerM))
    {
        this.config = config;
        codebooks = nn.ModuleList(Enumerable.Range(0, config.NumCodebooks)
            .Select(_ => new VectorQuantizer(config.CodebookSize, config.CodeWidth)).ToArray());
        RegisterComponents();
    }

    /// <summary>(B, L, K*w) -> ids (B, K, L), per-codebook ids in [0, V/K).</summary>
    public Tensor FeaturesToIndices(Tensor features)
    {
        using var scope = NewDisposeScope();
        if (features.device_type == DeviceType.CUDA && FusedCodeSearch.Shared is { } search
            && search.TryNearest(features, stack(codebooks.Select(book => book.NormalizedCodes()).ToArray()), out var found))
            return found.MoveToOuterDisposeScope();
        var (b, l) = (features.shape[0], features.shape[1]);
        var chunks = features.split(config.CodeWidth, -1);
        var ids = codebooks.Select((book, i) =>
        {
            var f = F.normalize(chunks[i].reshape(-1, config.CodeWidth), p: 2, dim: -1).to(float32);
            return book.Indices(f, book.NormalizedCodes()).view(b, l);
        }).ToArray();
        return stack(ids, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Ids (B, K, L) -> normalised code vectors (B, L, K*w).</summary>
    public Tensor IndicesToFeatures(Tensor indices)
    {
        using var scope = NewDisposeScope();
        if (indices.dim() != 3 || indices.shape[1] != config.NumCodebooks)
            throw new ArgumentException($"Indices must be (B, {config.NumCodebooks}, L), got ({string.Join(", ", indices.shape)})");
        var (b, l) = (indices.shape[0], indices.shape[2]);
        var parts = codebooks.Select((book, i) => book.Lookup(indices[.., i]).view(b, l, config.CodeWidth)).ToArray();
        return cat(parts, -1).MoveToOuterDisposeScope();
    }

    public QuantizerOutput Quantize(Tensor features)
    {
        using var scope = NewDisposeScope();
        double? inverseTemperature = config.EntropyWeight > 0 ? 1.0 / config.EntropyTemperature : null;
        var chunks = features.split(config.CodeWidth, -1);
        var results = codebooks.Select((book, i) => book.Quantize(chunks[i], config.VqBeta, inverseTemperature)).ToArray();
        var k = config.NumCodebooks;
        Tensor Mean(IEnumerable<Tensor> values) => values.Aggregate((a, v) => a + v) / k;
        var output = new QuantizerOutput(
            cat(results.Select(r => r.Quantized).ToArray(), -1),
            stack(results.Select(r => r.Indices).ToArray(), 1),
            Mean(results.Select(r => r.VqLoss)),
            inverseTemperature is null ? zeros(1).squeeze() : Mean(results.Select(r => r.EntropyLoss!)),
            Mean(results.Select(r => r.Usage)));
        return output.MoveToOuterDisposeScope();
    }
}

internal sealed record QuantizerOutput(Tensor Quantized, Tensor Indices, Tensor VqLoss, Tensor EntropyLoss, Tensor Usage)
{
    public QuantizerOutput MoveToOuterDisposeScope()
    {
        foreach (var t in new[] { Quantized, Indices, VqLoss, EntropyLoss, Usage }) t.MoveToOuterDisposeScope();
        return this;
    }
}

/// <summary>Maps inputs in [-1, 1] to SigLIP's convention; net effect is a clamp, kept op by op for bit parity.</summary>
internal sealed class ScalingLayerForSigLip : nn.Module<Tensor, Tensor>
{
    private readonly Tensor shift;
    private readonly Tensor scale;

    public ScalingLayerForSigLip() : base(nameof(ScalingLayerForSigLip))
    {
        shift = tensor(new[] { 0.5f, 0.5f, 0.5f }).view(1, 3, 1, 1);
        scale = tensor(new[] { 0.5f, 0.5f, 0.5f }).view(1, 3, 1, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var unit = ((x + 1.0) * 127.5).clamp(0, 255.0) / 255.0;
        return ((unit - shift) / scale).MoveToOuterDisposeScope();
    }
}

/// <summary>What the encoder side produces for a batch (reference <c>encode</c>).</summary>
public sealed record EncodeOutput(
    Tensor PoolerOut,     // (B, D) mean of the semantic tokens
    Tensor QueryTokens,   // (B, N, D) semantic tokens after fc_norm and projection
    Tensor Quant,         // (B, L, D) after the post-quantization projection
    Tensor Indices,       // (B, K, L) int64
    Tensor VqLoss,        // scalar, mean over codebooks
    Tensor EntropyLoss,   // scalar, mean over codebooks (0 when le <= 0)
    Tensor Usage) : IDisposable // scalar, percent of codes used in this batch
{
    public void Dispose()
    {
        foreach (var t in new[] { PoolerOut, QueryTokens, Quant, Indices, VqLoss, EntropyLoss, Usage }) t.Dispose();
    }

    internal EncodeOutput MoveToOuterDisposeScope()
    {
        foreach (var t in new[] { PoolerOut, QueryTokens, Quant, Indices, VqLoss, EntropyLoss, Usage }) t.MoveToOuterDisposeScope();
        return this;
    }
}

/// <summary>Tokenizer output: discrete pixel tokens and continuous semantic tokens.</summary>
public sealed record TokenizeOutput(Tensor Indices, Tensor SemanticTokens) : IDisposable // (B, K, L) int64; (B, N, D) fp32
{
    public void Dispose()
    {
        Indices.Dispose();
        SemanticTokens.Dispose();
    }
}

/// <summary>The WinTok network. Field names are the reference checkpoint's keys.</summary>
public sealed class WinTokModel : nn.Module
{
    private readonly SiglipVisionModel encoder;
    private readonly Parameter query_tokens;             // (N, D)
    private readonly Parameter query_tokens_pos_embed;   // (N, D) trainable 1-D sin-cos
    private readonly SiglipVisionModel decoder;
    private readonly Parameter decoder_rec_pos_embed;    // (L, Dd) fixed 2-D sin-cos, stored
    private readonly Sequential decode_task_layer_1;
    private readonly Sequential decode_task_layer_2;
    private readonly Conv2d conv_out;
    private readonly ScalingLayerForSigLip scaling_layer;
    private readonly AttnProjection quant_proj;
    private readonly AttnProjection post_quant_proj;
    private readonly VectorQuantizerM quantizer;
    private readonly LayerNorm fc_norm;
    private readonly Linear projection;

    public WinTokModel(WinTokConfig config) : base(nameof(WinTokModel))
    {
        config.Validate();
        Config = config;
        var e = config.Encoder;
        encoder = new SiglipVisionModel(new SiglipVisionTransformer(e.Layers, e.HiddenSize, e.Heads, e.IntermediateSize, e.LayerNormEps, e));
        query_tokens = new Parameter(randn(config.NumLatentTokens, e.HiddenSize));
        query_tokens_pos_embed = new Parameter(SinCos.Embedding1D(e.HiddenSize, config.NumLatentTokens));
        decoder = new SiglipVisionModel(new SiglipVisionTransformer(
            config.DecoderDepth, config.DecoderHidden, config.DecoderHeads, config.DecoderIntermediate, 1e-6, withEmbeddings: null));
        decoder_rec_pos_embed = new Parameter(SinCos.Embedding2D(config.DecoderHidden, e.GridSize), requires_grad: false);
        decode_task_layer_1 = nn.Sequential(
            ("0", nn.Linear(e.HiddenSize, config.DecoderHidden)),
            ("1", nn.Tanh()),
            ("2", nn.Linear(config.DecoderHidden, config.DecoderHidden)));
        // Index 1 of the reference's Sequential is an einops Rearrange without parameters; Decode does it by hand.
        decode_task_layer_2 = nn.Sequential(("0", nn.Conv2d(config.DecoderHidden, e.PatchSize * e.PatchSize * 3, 1)));
        conv_out = nn.Conv2d(3, 3, 3, padding: 1);
        scaling_layer = new ScalingLayerForSigLip();
        quant_proj = new AttnProjection(e.HiddenSize, config.VocabWidth, config.NumCodebooks);
        post_quant_proj = new AttnProjection(config.VocabWidth, e.HiddenSize, config.NumCodebooks);
        quantizer = new VectorQuantizerM(config);
        fc_norm = nn.LayerNorm(e.HiddenSize, 1e-6);
        projection = nn.Linear(e.HiddenSize, e.HiddenSize);
        RegisterComponents();
    }

    public WinTokConfig Config { get; }

    /// <summary>Precision of the encoder and decoder stacks; the projections and quantizer always stay float32.</summary>
    public ScalarType ComputeDtype { get; private set; } = ScalarType.Float32;

    /// <summary>
    /// Runs the encoder, decoder and semantic head in <paramref name="dtype"/> (bfloat16 on GPUs) while the attention
    /// projections and the quantizer keep float32, as the reference does under autocast. Call after loading weights.
    /// </summary>
    public WinTokModel UseComputePrecision(ScalarType dtype)
    {
        foreach (var module in new nn.Module[] { encoder, decoder, decode_task_layer_1, decode_task_layer_2, conv_out, fc_norm, projection })
            module.to(dtype);
        // Root parameters cannot be converted in place through a submodule; keep float32 masters and cast per call.
        ComputeDtype = dtype;
        return this;
    }

    /// <summary>
    /// Readies a loaded model for serving: eval mode, <paramref name="dtype"/> for the stacks, fused q/k/v projections
    /// and the down-projection's folded value path (<see cref="IInferenceFusion"/>). Switching back to training mode
    /// drops the derived weights.
    /// </summary>
    public WinTokModel PrepareForInference(ScalarType dtype)
    {
        eval();
        if (dtype != ScalarType.Float32) UseComputePrecision(dtype);
        foreach (var module in modules().OfType<IInferenceFusion>()) module.Fuse();
        return this;
    }

    public override void train(bool on = true)
    {
        if (on) foreach (var module in modules().OfType<IInferenceFusion>()) module.Unfuse();
        base.train(on);
    }

    /// <summary>Images (B, 3, H, W) in [-1, 1] to pixel-token ids (B, K, L) and semantic tokens (B, N, D).</summary>
    public TokenizeOutput Tokenize(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (pixels, semantic) = EncodeTokens(images);
        var indices = quantizer.FeaturesToIndices(quant_proj.call(pixels.to(float32)));
        var semanticTokens = SemanticHead(semantic).to(float32);
        return new TokenizeOutput(indices.MoveToOuterDisposeScope(), semanticTokens.MoveToOuterDisposeScope());
    }

    /// <summary>Reference <c>img_to_idx</c>: images to pixel-token ids (B, K, L).</summary>
    public Tensor ImageToIndices(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (pixels, _) = EncodeTokens(images);
        return quantizer.FeaturesToIndices(quant_proj.call(pixels.to(float32))).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>idx_to_img</c>: ids (B, K, L) to reconstructions (B, 3, H, W), not clamped.</summary>
    public Tensor IndicesToImage(Tensor indices)
    {
        using var scope = NewDisposeScope();
        var quant = post_quant_proj.call(quantizer.IndicesToFeatures(indices));
        return Decode(quant).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>encode</c>: both branches, the quantizer's losses and usage.</summary>
    public EncodeOutput Encode(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (pixels, semantic) = EncodeTokens(images);
        var q = quantizer.Quantize(quant_proj.call(pixels.to(float32)));
        var quant = post_quant_proj.call(q.Quantized);
        var queryTokens = SemanticHead(semantic);
        var pooled = queryTokens.mean([1]);
        return new EncodeOutput(pooled, queryTokens, quant, q.Indices, q.VqLoss, q.EntropyLoss, q.Usage).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>decode</c>: post-quantization features (B, L, D) to pixels (B, 3, H, W).</summary>
    public Tensor Decode(Tensor quant)
    {
        using var scope = NewDisposeScope();
        var grid = Config.Encoder.GridSize;
        var patch = Config.Encoder.PatchSize;
        var b = quant.shape[0];
        var x = decode_task_layer_1.call(quant.to(ComputeDtype)) + decoder_rec_pos_embed.to(ComputeDtype);
        x = decoder.VisionModel.Encode(x);                                       // (B, L, Dd)
        x = x.permute(0, 2, 1).contiguous().view(b, -1, grid, grid);            // (B, Dd, G, G)
        x = decode_task_layer_2.call(x);                                         // (B, p*p*3, G, G), channels (p1 p2 c)
        x = x.view(b, patch, patch, 3, grid, grid).permute(0, 3, 4, 1, 5, 2)    // [b, c, h, p1, w, p2]
             .reshape(b, 3, grid * patch, grid * patch);
        return conv_out.call(x).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>encode_image</c>: the L2-normalised pooled semantic embedding (B, D).</summary>
    public Tensor EncodeImage(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (_, semantic) = EncodeTokens(images);
        var pooled = SemanticHead(semantic).to(float32).mean([1]);
        return F.normalize(pooled, p: 2, dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>forward</c>: encode then decode; the training step's input.</summary>
    public (EncodeOutput Encoded, Tensor Recon) Forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var encoded = Encode(images);
        var recon = Decode(encoded.Quant);
        recon.MoveToOuterDisposeScope();
        return (encoded.MoveToOuterDisposeScope(), recon);
    }

    /// <summary>The patch embedding of (already scaled) pixels, as a GEMM or as the convolution, for `wintok bench layers`.</summary>
    internal Tensor EmbedPatches(Tensor pixels, bool asConvolution) => asConvolution
        ? encoder.VisionModel.Embeddings.ForwardAsConvolution(pixels.to(ComputeDtype))
        : encoder.VisionModel.Embed(pixels.to(ComputeDtype));

    /// <summary>The encoder's layers, for `wintok bench layers`.</summary>
    internal IReadOnlyList<SiglipEncoderLayer> EncoderLayers => encoder.VisionModel.Encoder.Layers;

    /// <summary>The stages of <see cref="ImageToIndices"/> after the encoder, for `wintok bench layers`.</summary>
    internal Tensor ProjectPixels(Tensor pixels) => quant_proj.call(pixels.to(float32));

    internal Tensor FeaturesToIndices(Tensor features) => quantizer.FeaturesToIndices(features);

    /// <summary>Reference <c>get_last_layer</c>: the weight the adaptive GAN loss weight is measured on.</summary>
    public Parameter LastLayer => conv_out.weight!;

    /// <summary>Encoder with the semantic tokens appended; returns pixel (B, L, D) and semantic (B, N, D) outputs.</summary>
    internal (Tensor Pixels, Tensor Semantic) EncodeTokens(Tensor images)
    {
        using var scope = NewDisposeScope();
        var shape = Config.Encoder;
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != shape.ImageSize || images.shape[3] != shape.ImageSize)
            throw new ArgumentException($"Images must be (B, 3, {shape.ImageSize}, {shape.ImageSize}), got ({string.Join(", ", images.shape)})");
        var x = scaling_layer.call(images.to(float32)).to(ComputeDtype);
        var patches = encoder.VisionModel.Embed(x);                              // (B, L, D)
        var b = patches.shape[0];
        var semantic = (query_tokens + query_tokens_pos_embed).to(ComputeDtype).unsqueeze(0).expand(b, -1, -1);
        var hidden = encoder.VisionModel.Encode(cat([patches, semantic], 1));   // (B, L+N, D)
        var l = shape.NumPatches;
        var pixelTokens = hidden[.., ..l].MoveToOuterDisposeScope();
        var semanticTokens = hidden[.., l..].MoveToOuterDisposeScope();
        return (pixelTokens, semanticTokens);
    }

    private Tensor SemanticHead(Tensor semantic) => Dense.Forward(projection, Norm.Forward(fc_norm, semantic));
}

/// <summary>Fixed sin-cos position embeddings, computed in float64 and cast to float32 as the reference does.</summary>
internal static class SinCos
{
    /// <summary>(positions, d): all sines first, then all cosines, with omega_j = 10000^(-j / (d/2)).</summary>
    public static Tensor Embedding1D(int dim, int positions) => Embedding1D(dim, Enumerable.Range(0, positions).Select(p => (double)p).ToArray());

    private static Tensor Embedding1D(int dim, double[] positions)
    {
        var half = dim / 2;
        var values = new float[positions.Length * dim];
        for (var p = 0; p < positions.Length; p++)
            for (var j = 0; j < half; j++)
            {
                var omega = 1.0 / Math.Pow(10000.0, j / (double)half);
                var angle = positions[p] * omega;
                values[p * dim + j] = (float)Math.Sin(angle);
                values[p * dim + half + j] = (float)Math.Cos(angle);
            }
        return tensor(values).view(positions.Length, dim);
    }

    /// <summary>
    /// (grid*grid, d) for row-major tokens t = r*grid + c: the first half encodes the column, the second the row
    /// (the reference names the halves emb_h/emb_w, but the first comes from the meshgrid's x array).
    /// </summary>
    public static Tensor Embedding2D(int dim, int grid)
    {
        using var scope = NewDisposeScope();
        var cols = Enumerable.Range(0, grid * grid).Select(t => (double)(t % grid)).ToArray();
        var rows = Enumerable.Range(0, grid * grid).Select(t => (double)(t / grid)).ToArray();
        return cat([Embedding1D(dim / 2, cols), Embedding1D(dim / 2, rows)], 1).MoveToOuterDisposeScope();
    }
}
