using TorchSharp;
using System.Text.Json;
using TorchSharp.Modules;
using WinTok.Inference;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// WinTok: a hybrid visual tokenizer (arXiv 2605.18115; reference github.com/markywg/WinTok @ eb0452e, models/wintok.py
// and models/modules/quant.py). A SigLIP ViT encoder reads the image patches followed by N learnable semantic tokens.
// The patch outputs go through an attention projection and a multi-codebook cosine VQ (discrete pixel tokens) and are
// decoded to pixels by a SigLIP2-style ViT decoder; the semantic outputs become continuous semantic tokens.
//
// Every field below carries the name of the reference's state_dict key, so a checkpoint loads by a checked key-by-key
// copy. The shared blocks live beside this file: Siglip.cs (encoder and decoder layers), AttnProjection.cs,
// VectorQuantizer.cs; InferenceKernels.cs says how layers pick their kernels.

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

/// <summary>The WinTok network. Field names are the reference checkpoint's keys.</summary>
public sealed class WinTokModel : nn.Module, ITokenizerModel
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
    private InferenceKernels kernels = InferenceKernels.Torch;

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
        quantizer = new VectorQuantizerM(config.Quantizer);
        fc_norm = nn.LayerNorm(e.HiddenSize, 1e-6);
        projection = nn.Linear(e.HiddenSize, e.HiddenSize);
        RegisterComponents();
    }

    public WinTokConfig Config { get; }

    /// <inheritdoc/>
    public ModelDescription Description => new(
        ModelKinds.WinTok, Config.Encoder.ImageSize, Config.NumCodebooks, Config.CodebookSize, Config.PixelTokens,
        Config.Encoder.GridSize, Config.NumLatentTokens, Config.Encoder.HiddenSize, Config.Encoder.HiddenSize,
        JsonSerializer.Serialize(ReferenceArgs.FromConfig(Config)));

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
    /// Readies a loaded model for serving: eval mode, <paramref name="dtype"/> for the stacks, fused q/k/v projections,
    /// the down-projection's folded value path, and <paramref name="kernels"/> for every layer (torch's when null; see
    /// <see cref="InferenceKernels.For"/>). Switching back to training mode drops the derived weights and the kernels.
    /// </summary>
    public WinTokModel PrepareForInference(ScalarType dtype, InferenceKernels? kernels = null)
    {
        eval();
        if (dtype != ScalarType.Float32) UseComputePrecision(dtype);
        this.kernels = kernels ?? InferenceKernels.Torch;
        foreach (var module in modules().OfType<IInferenceModule>()) module.PrepareForInference(this.kernels);
        return this;
    }

    void ITokenizerModel.PrepareForInference(Device device, ScalarType dtype, CudaFastPaths fastPaths)
    {
        if (device.type != DeviceType.CPU) this.to(device);
        PrepareForInference(dtype, InferenceKernels.For(device, fastPaths));
    }

    /// <summary>Reference <c>img_to_reconstructed_img</c>: encode then decode, not clamped, with the ids on the way.</summary>
    public Reconstruction Reconstruct(Tensor images, bool withEmbedding = false)
    {
        using var scope = NewDisposeScope();
        var (pixels, semantic) = EncodeTokens(images);
        var quantized = quantizer.Quantize(quant_proj.call(pixels.to(float32)));
        var recon = Decode(post_quant_proj.call(quantized.Quantized));
        var embedding = withEmbedding ? F.normalize(SemanticHead(semantic).to(float32).mean([1]), p: 2, dim: -1).MoveToOuterDisposeScope() : null;
        return new Reconstruction(recon.MoveToOuterDisposeScope(), quantized.Indices.MoveToOuterDisposeScope(), embedding);
    }

    public override void train(bool on = true)
    {
        if (on)
        {
            kernels = InferenceKernels.Torch;
            foreach (var module in modules().OfType<IInferenceModule>()) module.ResetForTraining();
        }
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
        QuantizerOutput q;
        Tensor quant;
        // The reference turns autocast off here: projections and quantizer always run in float32. It also wraps both
        // projections in non-reentrant activation checkpointing, which saves memory at scale but changes no number.
        using (Autocast.Suspend())
        {
            q = quantizer.Quantize(quant_proj.call(pixels.to(float32)));
            quant = post_quant_proj.call(q.Quantized);
        }
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
        var (first, second) = ((Linear)decode_task_layer_1[0], (Linear)decode_task_layer_1[2]);
        var x = Dense.Forward(second, Dense.Forward(first, quant.to(ComputeDtype), kernels).tanh(), kernels)
                + decoder_rec_pos_embed.to(ComputeDtype);
        x = decoder.VisionModel.Encode(x);                                       // (B, L, Dd)
        x = x.permute(0, 2, 1).contiguous().view(b, -1, grid, grid);            // (B, Dd, G, G)
        x = Conv.Forward((Conv2d)decode_task_layer_2[0], x);                     // (B, p*p*3, G, G), channels (p1 p2 c)
        x = x.view(b, patch, patch, 3, grid, grid).permute(0, 3, 4, 1, 5, 2)    // [b, c, h, p1, w, p2]
             .reshape(b, 3, grid * patch, grid * patch);
        return Conv.Forward(conv_out, x).to(float32).MoveToOuterDisposeScope();
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

    /// <summary>
    /// How many forwards each codebook's <c>vocab_usage</c> buffer has recorded (it picks the EMA weight). Not in the
    /// state_dict, as in the reference; a trainer saves and restores it so a resume continues the same statistics.
    /// </summary>
    public IReadOnlyList<int> UsageRecordCounts
    {
        get => quantizer.UsageRecordCounts;
        set => quantizer.UsageRecordCounts = value;
    }

    /// <summary>Reference <c>get_last_layer</c>: the weight the adaptive GAN loss weight is measured on.</summary>
    public Parameter LastLayer => conv_out.weight!;

    /// <summary>Reference <c>scaling_layer</c>: images in [-1, 1] to SigLIP's input convention (what the teacher reads).</summary>
    public Tensor ScaleForSiglip(Tensor images) => scaling_layer.call(images.to(float32));

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

    private Tensor SemanticHead(Tensor semantic) => Dense.Forward(projection, Norm.Forward(fc_norm, semantic, kernels), kernels);
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
