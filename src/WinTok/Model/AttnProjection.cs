using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// The attention projection between the encoder width and the code width, in both directions (reference
// models/modules/quant.py: AttnProjection, PlainAttention, GeGluMlp). WinTok and UniTok build it the same way; only
// the widths and head counts differ (WinTok: num_codebooks heads; UniTok: embed_dim // vocab_width).

/// <summary>Attention of the projection (reference <c>PlainAttention</c>): qkv without bias, separate q and v biases.</summary>
internal sealed class PlainAttention : nn.Module<Tensor, Tensor>, IInferenceModule
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
    private InferenceKernels kernels = InferenceKernels.Torch;

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
    public void PrepareForInference(InferenceKernels kernels)
    {
        ResetForTraining();
        this.kernels = kernels;
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

    public void ResetForTraining()
    {
        folded?.Weight.Dispose();
        folded?.Bias.Dispose();
        folded = null;
        kernels = InferenceKernels.Torch;
    }

    public override Tensor forward(Tensor x) // (B, N, in) -> (B, N, out)
    {
        using var scope = NewDisposeScope();
        var (b, n) = (x.shape[0], x.shape[1]);
        var wide = Math.Max(inDim, outDim);
        if (folded is not null && !is_grad_enabled())
        {
            var projected = Dense.Forward(x, folded.Weight, folded.Bias, kernels);                // (B, N, 2 wide + H out)
            Tensor Heads(Tensor y, int width) => y.view(b, n, heads, width).transpose(1, 2);
            var (width, pooledWidth) = (wide / heads, outDim);
            var q = Heads(projected.narrow(2, 0, wide), width);
            var k = Heads(projected.narrow(2, wide, wide), width);
            var v = Heads(projected.narrow(2, 2 * wide, heads * pooledWidth), pooledWidth);
            // The scale stays 1/sqrt(head width): scaled_dot_product_attention takes it from q.
            return Dense.Forward(proj, F.scaled_dot_product_attention(q, k, v).mean([1]), kernels).MoveToOuterDisposeScope();
        }
        var bias = cat([q_bias, zero_k_bias, v_bias]);
        var packed = Dense.Forward(x, qkv.weight!, bias, kernels).reshape(b, n, 3, heads, wide / heads).permute(2, 0, 3, 1, 4);
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
        return Dense.Forward(proj, merged, kernels).MoveToOuterDisposeScope();
    }

    private sealed record FoldedQkv(Tensor Weight, Tensor Bias); // (2 wide + H out, in), (2 wide + H out)
}

/// <summary>Gated GELU MLP with its own pre-norm (timm LayerNorm, eps 1e-6).</summary>
internal sealed class GeGluMlp : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly LayerNorm norm;
    private readonly Linear w0;
    private readonly Linear w1;
    private readonly Linear w2;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public GeGluMlp(int features, int hidden) : base(nameof(GeGluMlp))
    {
        norm = nn.LayerNorm(features, 1e-6);
        w0 = nn.Linear(features, hidden);
        w1 = nn.Linear(features, hidden);
        w2 = nn.Linear(hidden, features);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var n = Norm.Forward(norm, x, kernels);
        return Dense.Forward(w2, Dense.Forward(w0, n, kernels, gelu: true) * Dense.Forward(w1, n, kernels), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Attention projection between the encoder width and the code width, both directions. Its layer norms keep torch's
/// default eps 1e-5, unlike every other norm of the model.
/// </summary>
internal sealed class AttnProjection : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly LayerNorm norm1;
    private readonly PlainAttention attn;
    private readonly Linear proj;
    private readonly LayerNorm norm3;
    private readonly LayerNorm norm2;
    private readonly GeGluMlp mlp;
    private InferenceKernels kernels = InferenceKernels.Torch;

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

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x.to(Dtype); // the reference aligns the input with the projection's own precision
        var y = Dense.Forward(proj, Norm.Forward(norm3, x, kernels), kernels) + attn.call(Norm.Forward(norm1, x, kernels));
        y = y + mlp.call(Norm.Forward(norm2, y, kernels));
        return y.MoveToOuterDisposeScope();
    }
}
