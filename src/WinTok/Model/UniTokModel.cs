using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using WinTok.Inference;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// UniTok: a unified visual tokenizer for generation and understanding (arXiv 2502.20321; reference
// github.com/FoundationVision/UniTok @ bb8012e: models/unitok.py, models/vitamin.py, models/vqvae.py, models/quant.py,
// utils/config.py, and its vendored open_clip for the text tower). A ViTamin hybrid encoder (MBConv stages, then a
// GeGLU ViT) reads the image; an attention projection and an 8-codebook cosine VQ make the discrete tokens; a ViT plus
// a convolutional upsampler decodes them to pixels; the quantized tokens, mean-pooled, are also the CLIP image
// embedding that an open_clip text transformer is trained against. It is the baseline WinTok is compared with.
//
// The ViTamin encoder is timm's VisionTransformer (timm 1.0.8, the version UniTok pins) with UniTok's HybridEmbed; the
// decoder keeps only that ViT's blocks and norm. Every field carries the name of the reference's state_dict key
// (docs/wintok-reference.md 6.1), so a checkpoint loads by a checked key-by-key copy. Shared with WinTok:
// AttnProjection and GeGluMlp (AttnProjection.cs), VectorQuantizerM (VectorQuantizer.cs), InferenceKernels.cs.

/// <summary>
/// Shape of a ViTamin hybrid encoder (reference <c>models/vitamin.py</c>). UniTok names it by timm model name
/// (<c>args.model</c>), so the shape comes from <see cref="Presets"/>, not from the checkpoint's args.
/// </summary>
/// <param name="StemWidth">Channels of the conv stem (3x3 stride 2, LayerNorm2d + GELU, 3x3).</param>
/// <param name="Stage1Width">MBConv stage 1 channels (its first block halves the resolution).</param>
/// <param name="Stage2Width">MBConv stage 2 channels (its first block halves the resolution).</param>
/// <param name="Stage1Depth">MBConv blocks in stage 1.</param>
/// <param name="Stage2Depth">MBConv blocks in stage 2.</param>
/// <param name="EmbedDim">ViT width; a strided 3x3 "pool" conv maps stage 2 to it, halving the resolution again.</param>
/// <param name="Depth">ViT blocks in the encoder, and again in the decoder (the decoder is the same timm model).</param>
/// <param name="Heads">Attention heads of those ViT blocks.</param>
/// <param name="MlpRatio">GeGLU hidden width over the ViT width (2 in every ViTamin).</param>
public sealed record ViTaminShape(
    int StemWidth,
    int Stage1Width,
    int Stage2Width,
    int Stage1Depth,
    int Stage2Depth,
    int EmbedDim,
    int Depth,
    int Heads,
    double MlpRatio = 2.0)
{
    /// <summary>The four stride-2 steps (stem, stage 1, stage 2, pool): one token per 16 x 16 pixels.</summary>
    public const int Downsampling = 16;

    /// <summary>Inverted MBConv blocks of the decoder's two upsampling stages (ViTaminDecoder's default depths=(4, 2)).</summary>
    public static readonly (int Stage2, int Stage1) DecoderDepths = (4, 2);

    /// <summary>timm <c>vitamin_base</c>: 128/256 MBConv, ViT 768 x 14, 12 heads.</summary>
    public static ViTaminShape Base { get; } = new(128, 128, 256, 2, 4, 768, 14, 12);

    /// <summary>timm <c>vitamin_large</c>: 160/320 MBConv, ViT 1024 x 31, 16 heads (the released UniTok).</summary>
    public static ViTaminShape Large { get; } = new(160, 160, 320, 2, 4, 1024, 31, 16);

    /// <summary>
    /// The <c>args.model</c> names UniTok can build: those in both timm's registry and ViTaminDecoder's width table
    /// (<c>vitamin_small</c> and <c>vitamin_base_256</c> are registered but the reference decoder has no widths for them).
    /// </summary>
    public static IReadOnlyDictionary<string, ViTaminShape> Presets { get; } = new Dictionary<string, ViTaminShape>
    {
        ["vitamin_base"] = Base,
        ["vitamin_large"] = Large,
    };

    /// <summary>
    /// Decoder widths (ViT, stage 2, stage 1) as ViTaminDecoder's name-keyed table gives them; for every entry they are
    /// the encoder's own widths in reverse.
    /// </summary>
    public (int Vit, int Stage2, int Stage1) DecoderWidths => (EmbedDim, Stage2Width, Stage1Width);

    public int MlpHidden => (int)(EmbedDim * MlpRatio);

    internal IEnumerable<string> Problems()
    {
        if (new[] { StemWidth, Stage1Width, Stage2Width, Stage1Depth, Stage2Depth, EmbedDim, Depth, Heads }.Any(v => v < 1) || MlpRatio <= 0)
            yield return $"every ViTamin size must be positive, got {this}";
        else if (EmbedDim % Heads != 0)
            yield return $"ViT width {EmbedDim} is not divisible by {Heads} heads";
    }
}

/// <summary>
/// Architecture of a UniTok tokenizer: the fields of the reference <c>Args</c> (<c>utils/config.py</c>) that shape the
/// network, under their own names, plus the ViTamin shape that <c>model</c> names. Defaults are the reference's, which
/// are the released <c>unitok_tokenizer.pth</c>'s. Training-only fields (losses, schedules, drop_path) live with the trainer.
/// </summary>
/// <param name="Encoder">The ViTamin shape (<see cref="ViTaminShape.Presets"/>[<paramref name="Model"/>]).</param>
/// <param name="Model"><c>model</c>: the timm model name of encoder and decoder.</param>
/// <param name="ImgSize"><c>img_size</c>: square input side; a multiple of 16.</param>
/// <param name="VocabSize"><c>vocab_size</c>: codes summed over all codebooks (32768 = 8 x 4096).</param>
/// <param name="VocabWidth"><c>vocab_width</c>: code width summed over all codebooks (64 = 8 x 8); the attention
/// projections get <c>EmbedDim / vocab_width</c> heads (16 for the release), not num_codebooks.</param>
/// <param name="NumCodebooks"><c>num_codebooks</c>: sub-quantizers.</param>
/// <param name="VqBeta"><c>vq_beta</c>: commitment weight of the VQ loss.</param>
/// <param name="Le"><c>le</c>: entropy-loss weight; the entropy loss is only computed when positive (UniTok trains with 0).</param>
/// <param name="ETemp"><c>e_temp</c>: entropy temperature.</param>
/// <param name="QuantProj"><c>quant_proj</c>: <c>attn</c> (AttnProjection, the release) or <c>linear</c>.</param>
/// <param name="EmbedDim"><c>embed_dim</c>: width of the CLIP image and text embeddings.</param>
/// <param name="NumQuery"><c>num_query</c>: register tokens; only 0 (the release) is supported.</param>
/// <param name="TextWidth"><c>text_width</c>.</param>
/// <param name="TextHeads"><c>text_heads</c>.</param>
/// <param name="TextLayers"><c>text_layers</c>.</param>
/// <param name="TextVocabSize"><c>text_vocab_size</c>: 49408, the open_clip BPE vocabulary.</param>
/// <param name="TextContextLength"><c>text_context_length</c>: tokens per prompt, padded with 0.</param>
public sealed record UniTokConfig(
    ViTaminShape Encoder,
    string Model = "vitamin_large",
    int ImgSize = 256,
    int VocabSize = 32768,
    int VocabWidth = 64,
    int NumCodebooks = 8,
    double VqBeta = 0.25,
    double Le = 0.0,
    double ETemp = 0.01,
    string QuantProj = "attn",
    int EmbedDim = 768,
    int NumQuery = 0,
    int TextWidth = 768,
    int TextHeads = 12,
    int TextLayers = 12,
    int TextVocabSize = 49408,
    int TextContextLength = 77)
{
    /// <summary>The released <c>unitok_tokenizer.pth</c>: ViTamin-L at 256 px, 8 codebooks of 4096 x 8, CLIP width 768.</summary>
    public static UniTokConfig Released { get; } = new(ViTaminShape.Large);

    public int GridSize => ImgSize / ViTaminShape.Downsampling;
    public int PixelTokens => GridSize * GridSize;
    public int CodebookSize => VocabSize / NumCodebooks;
    public int CodeWidth => VocabWidth / NumCodebooks;

    /// <summary>Heads of both attention projections: <c>encoder.embed_dim // vocab_width</c> (models/unitok.py).</summary>
    public int ProjectionHeads => Encoder.EmbedDim / VocabWidth;

    public QuantizerConfig Quantizer => new(NumCodebooks, VocabSize, VocabWidth, VqBeta, Le, ETemp);

    /// <summary>Throws with every reason at once when the network cannot be built.</summary>
    public void Validate()
    {
        var problems = Encoder.Problems().ToList();
        if (ImgSize < ViTaminShape.Downsampling || ImgSize % ViTaminShape.Downsampling != 0)
            problems.Add($"img_size {ImgSize} is not a positive multiple of {ViTaminShape.Downsampling} (the encoder halves it four times, the decoder doubles it back)");
        if (NumCodebooks < 1) problems.Add($"num_codebooks must be at least 1, got {NumCodebooks}");
        else
        {
            if (VocabSize < NumCodebooks || VocabSize % NumCodebooks != 0)
                problems.Add($"vocab_size {VocabSize} is not a positive multiple of num_codebooks {NumCodebooks}");
            if (VocabWidth < NumCodebooks || VocabWidth % NumCodebooks != 0)
                problems.Add($"vocab_width {VocabWidth} is not a positive multiple of num_codebooks {NumCodebooks}");
        }
        if (QuantProj is not ("attn" or "linear")) problems.Add($"quant_proj '{QuantProj}' is neither 'attn' nor 'linear'");
        if (QuantProj == "attn" && VocabWidth > 0 && Encoder.EmbedDim % VocabWidth != 0)
            problems.Add($"the attention projections split ViT width {Encoder.EmbedDim} into {Encoder.EmbedDim} // vocab_width {VocabWidth} heads, which needs vocab_width to divide it");
        if (NumQuery != 0) problems.Add($"num_query {NumQuery} is not supported (only 0, as released: register tokens change both encoder and decoder)");
        if (EmbedDim < 1) problems.Add($"embed_dim must be positive, got {EmbedDim}");
        if (TextWidth < 1 || TextHeads < 1 || TextLayers < 1 || TextVocabSize < 1 || TextContextLength < 2)
            problems.Add($"text tower sizes must be positive (width {TextWidth}, heads {TextHeads}, layers {TextLayers}, vocab {TextVocabSize}, context {TextContextLength})");
        else if (TextWidth % TextHeads != 0) problems.Add($"text width {TextWidth} is not divisible by {TextHeads} heads");
        if (VqBeta < 0) problems.Add($"vq_beta must not be negative, got {VqBeta}");
        if (ETemp <= 0) problems.Add($"e_temp must be positive, got {ETemp}");
        if (problems.Count > 0)
            throw new ArgumentException("Impossible UniTok configuration: " + string.Join("; ", problems));
    }
}

/// <summary>
/// LayerNorm over the channels of an NCHW map, optionally followed by exact GELU (timm <c>LayerNorm2d</c> and
/// <c>LayerNormAct2d</c>): permute to NHWC, normalise the last dimension, permute back.
/// </summary>
internal sealed class LayerNorm2d : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double eps;
    private readonly bool gelu;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public LayerNorm2d(int channels, bool gelu, double eps = 1e-6) : base(nameof(LayerNorm2d))
    {
        weight = new Parameter(ones(channels));
        bias = new Parameter(zeros(channels));
        (this.eps, this.gelu) = (eps, gelu);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x) // (B, C, H, W) -> (B, C, H, W)
    {
        using var scope = NewDisposeScope();
        // On an NHWC map the permuted view is contiguous: our kernel normalises it in place of torch's, GELU included.
        if (kernels.LayerNorm is { } fused && fused.TryForward(x.permute(0, 2, 3, 1), weight, bias, eps, out var normed, gelu))
            return normed.permute(0, 3, 1, 2).MoveToOuterDisposeScope();
        var y = F.layer_norm(x.permute(0, 2, 3, 1), [weight.shape[0]], weight, bias, eps).permute(0, 3, 1, 2);
        return (gelu ? F.gelu(y) : y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The rewritten forms UniTok's convolution stages take at inference when <see cref="InferenceKernels.RewriteConvolutions"/>
/// is set: maps in NHWC order (channels_last strides on NCHW shapes, as torch's channels_last), where a 1x1 convolution
/// is a GEMM over pixel rows and cuDNN picks its NHWC kernels.
/// </summary>
internal static class Nhwc
{
    /// <summary>Whether <paramref name="x"/> (N, C, H, W) is laid out NHWC, so its (N, H, W, C) permutation is contiguous.</summary>
    public static bool Is(Tensor x)
    {
        using var rows = x.permute(0, 2, 3, 1);
        return rows.is_contiguous();
    }

    /// <summary><paramref name="x"/> (N, C, H, W) laid out NHWC (a copy unless it already is).</summary>
    public static Tensor From(Tensor x) => Is(x) ? x.alias() : x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>
    /// A 1x1 convolution of <paramref name="rows"/> (N, H, W, Cin) as the linear layer it is: (N, H, W, Cout), the bias
    /// and an optional NHWC <paramref name="residual"/> added in the GEMM's epilogue where cuBLASLt serves.
    /// </summary>
    public static Tensor Pointwise(Conv2d conv, Tensor rows, InferenceKernels kernels, Tensor? residual = null)
    {
        using var scope = NewDisposeScope();
        var weight = conv.weight!;
        return Dense.Forward(rows, weight.view(weight.shape[0], weight.shape[1]), conv.bias, kernels, residual).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A depthwise 3x3 convolution (padding 1) of <paramref name="rows"/> (N, H, W, C), then exact GELU: our one kernel
    /// where it serves, else the module and torch's GELU. Returns (N, H', W', C).
    /// </summary>
    public static Tensor DepthwiseGelu(Conv2d conv, Tensor? tapMajorWeight, Tensor rows, int stride, InferenceKernels kernels)
    {
        using var scope = NewDisposeScope();
        if (kernels.Depthwise is { } fused && tapMajorWeight is not null
            && fused.TryForward(rows, tapMajorWeight, conv.bias!, stride, gelu: true, out var y))
            return y.MoveToOuterDisposeScope();
        return F.gelu(conv.call(rows.permute(0, 3, 1, 2))).permute(0, 2, 3, 1).contiguous().MoveToOuterDisposeScope();
    }

}

/// <summary>
/// What an MBConv block serves with: the kernels, and its depthwise weight in the tap-major order our kernel reads
/// (made when the block is prepared, dropped when it trains; a plain holder, so never in the state_dict).
/// </summary>
internal sealed class ServedConvolutions
{
    public InferenceKernels Kernels { get; private set; } = InferenceKernels.Torch;

    public Tensor? TapMajor { get; private set; }

    public void Prepare(Conv2d depthwise, InferenceKernels kernels)
    {
        Reset();
        Kernels = kernels;
        if (!kernels.RewriteConvolutions || kernels.Depthwise is null) return;
        using var noGrad = no_grad();
        TapMajor = Cuda.FusedDepthwiseConv.TapMajor(depthwise.weight!).DetachFromDisposeScope();
    }

    public void Reset()
    {
        TapMajor?.Dispose();
        TapMajor = null;
        Kernels = InferenceKernels.Torch;
    }
}

/// <summary>Conv stem: 3x3 stride 2, LayerNorm2d + exact GELU, 3x3 (reference <c>Stem</c>).</summary>
internal sealed class ConvStem : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly LayerNorm2d norm1;
    private readonly Conv2d conv2;

    public ConvStem(int inChannels, int outChannels) : base(nameof(ConvStem))
    {
        // timm's create_conv2d pads (stride - 1 + kernel - 1) / 2 = 1 on both sides for 3x3, stride 1 or 2.
        conv1 = nn.Conv2d(inChannels, outChannels, 3, stride: 2, padding: 1);
        norm1 = new LayerNorm2d(outChannels, gelu: true);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return conv2.call(norm1.call(conv1.call(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>Shortcut of a strided MBConv block: 3x3 average pooling (stride 2, padding not counted), then a 1x1 conv when the width changes.</summary>
internal sealed class Downsample2d : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> expand;

    public Downsample2d(int inChannels, int outChannels) : base(nameof(Downsample2d))
    {
        expand = inChannels != outChannels ? nn.Conv2d(inChannels, outChannels, 1) : nn.Identity();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var pooled = F.avg_pool2d(x, [3, 3], stride: [2, 2], padding: [1, 1], count_include_pad: false);
        return expand.call(pooled).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Pre-norm inverted-bottleneck conv block (reference <c>MbConvLNBlock</c>): LayerNorm2d, 1x1 expand x4, GELU,
/// depthwise 3x3 (strided in a stage's first block), GELU, 1x1 back, plus the shortcut.
/// </summary>
internal sealed class MbConvLNBlock : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly nn.Module<Tensor, Tensor> shortcut;
    private readonly LayerNorm2d pre_norm;
    private readonly Conv2d conv1_1x1;
    private readonly Conv2d conv2_kxk;
    private readonly Conv2d conv3_1x1;
    private readonly int stride;
    private readonly ServedConvolutions served = new();

    public MbConvLNBlock(int inChannels, int outChannels, int stride) : base(nameof(MbConvLNBlock))
    {
        var mid = MakeDivisible(outChannels * 4.0);
        shortcut = stride == 2 ? new Downsample2d(inChannels, outChannels)
            : inChannels != outChannels ? nn.Conv2d(inChannels, outChannels, 1)
            : nn.Identity();
        pre_norm = new LayerNorm2d(inChannels, gelu: false);
        conv1_1x1 = nn.Conv2d(inChannels, mid, 1);
        conv2_kxk = nn.Conv2d(mid, mid, 3, stride: stride, padding: 1, groups: mid);
        conv3_1x1 = nn.Conv2d(mid, outChannels, 1);
        this.stride = stride;
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => served.Prepare(conv2_kxk, kernels);

    public void ResetForTraining() => served.Reset();

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var kernels = served.Kernels;
        if (kernels.RewriteConvolutions && Nhwc.Is(x))
        {
            var rows = pre_norm.call(x).permute(0, 2, 3, 1);                                   // (N, H, W, Cin)
            var mid = Nhwc.DepthwiseGelu(conv2_kxk, served.TapMajor, F.gelu(Nhwc.Pointwise(conv1_1x1, rows, kernels)), stride, kernels);
            var skip = shortcut.call(x).permute(0, 2, 3, 1);
            return Nhwc.Pointwise(conv3_1x1, mid, kernels, skip).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
        }
        var y = F.gelu(conv1_1x1.call(pre_norm.call(x)));
        y = F.gelu(conv2_kxk.call(y));
        return (conv3_1x1.call(y) + shortcut.call(x)).MoveToOuterDisposeScope();
    }

    /// <summary>timm's <c>make_divisible(v, 8)</c>: round to a multiple of 8, never more than 10% down.</summary>
    internal static int MakeDivisible(double value, int divisor = 8)
    {
        var rounded = Math.Max(divisor, (int)(value + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * value ? rounded + divisor : rounded;
    }
}

/// <summary>The last downsampling of the conv stages: LayerNorm2d, then a 3x3 stride-2 conv to the ViT width (reference <c>StridedConv</c>).</summary>
internal sealed class StridedConv : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;
    private readonly LayerNorm2d norm;

    public StridedConv(int inChannels, int outChannels) : base(nameof(StridedConv))
    {
        proj = nn.Conv2d(inChannels, outChannels, 3, stride: 2, padding: 1);
        norm = new LayerNorm2d(inChannels, gelu: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.call(norm.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Stem, two MBConv stages and the strided pool conv (reference <c>MbConvStages</c>): (B, 3, H, W) -> (B, D, H/16, W/16).</summary>
internal sealed class MbConvStages : nn.Module<Tensor, Tensor>
{
    private readonly ConvStem stem;
    private readonly ModuleList<Sequential> stages;
    private readonly StridedConv pool;

    public MbConvStages(ViTaminShape shape) : base(nameof(MbConvStages))
    {
        stem = new ConvStem(3, shape.StemWidth);
        Sequential Stage(int inChannels, int width, int depth) => nn.Sequential(Enumerable.Range(0, depth)
            .Select(d => (nn.Module<Tensor, Tensor>)new MbConvLNBlock(d == 0 ? inChannels : width, width, d == 0 ? 2 : 1)));
        stages = nn.ModuleList(
            Stage(shape.StemWidth, shape.Stage1Width, shape.Stage1Depth),
            Stage(shape.Stage1Width, shape.Stage2Width, shape.Stage2Depth));
        pool = new StridedConv(shape.Stage2Width, shape.EmbedDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = stem.call(x);
        foreach (var stage in stages) x = stage.call(x);
        return pool.call(x).MoveToOuterDisposeScope();
    }
}

/// <summary>The conv stages as the ViT's patch embedding: feature map to tokens, row-major (reference <c>HybridEmbed</c>, patch 1, no projection).</summary>
internal sealed class HybridEmbed : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly MbConvStages backbone;
    private bool nhwc;

    public HybridEmbed(ViTaminShape shape) : base(nameof(HybridEmbed))
    {
        backbone = new MbConvStages(shape);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => nhwc = kernels.RewriteConvolutions;

    public void ResetForTraining() => nhwc = false;

    public override Tensor forward(Tensor x) // (B, 3, H, W) -> (B, L, D)
    {
        using var scope = NewDisposeScope();
        // NHWC from the first convolution on: every later op keeps the layout (cuDNN's outputs follow their input's).
        return backbone.call(nhwc ? Nhwc.From(x) : x).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}

/// <summary>timm ViT self-attention: one qkv projection with bias, no q/k norm, SDPA, output projection.</summary>
internal sealed class VitAttention : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int heads;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public VitAttention(int dim, int heads) : base(nameof(VitAttention))
    {
        this.heads = heads;
        qkv = nn.Linear(dim, dim * 3);
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x) => Forward(x, residual: null);

    /// <summary><c>residual + attention(x)</c>, the residual added in the output projection's epilogue.</summary>
    public Tensor Forward(Tensor x, Tensor? residual) // (B, N, D) -> (B, N, D)
    {
        using var scope = NewDisposeScope();
        var (b, n, d) = (x.shape[0], x.shape[1], x.shape[2]);
        var packed = Dense.Forward(qkv, x, kernels).view(b, n, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
        var attended = F.scaled_dot_product_attention(packed[0], packed[1], packed[2]);        // (B, H, N, hd)
        return Dense.Forward(proj, attended.transpose(1, 2).reshape(b, n, d), kernels, residual).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// timm 1.0.8 <c>Block</c> with UniTok's GeGLU MLP: <c>x + attn(norm1(x))</c>, then <c>x + mlp(norm2(x))</c>, where the
/// MLP normalises once more itself. Norms eps 1e-6 (timm's ViT default); no layer scale; drop path is training-only.
/// </summary>
internal sealed class VitBlock : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly LayerNorm norm1;
    private readonly VitAttention attn;
    private readonly LayerNorm norm2;
    private readonly GeGluMlp mlp;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public VitBlock(ViTaminShape shape) : base(nameof(VitBlock))
    {
        norm1 = nn.LayerNorm(shape.EmbedDim, 1e-6);
        attn = new VitAttention(shape.EmbedDim, shape.Heads);
        norm2 = nn.LayerNorm(shape.EmbedDim, 1e-6);
        mlp = new GeGluMlp(shape.EmbedDim, shape.MlpHidden);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor x) // (B, N, D) -> (B, N, D)
    {
        using var scope = NewDisposeScope();
        x = attn.Forward(Norm.Forward(norm1, x, kernels), residual: x);
        x = x + mlp.call(Norm.Forward(norm2, x, kernels));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Runs blocks in order, releasing each intermediate activation as soon as the next exists.</summary>
internal static class BlockStack
{
    public static Tensor Forward(ModuleList<VitBlock> blocks, Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = input;
        foreach (var block in blocks)
        {
            var next = block.call(hidden);
            if (!ReferenceEquals(hidden, input)) hidden.Dispose(); // autograd keeps what it saved
            hidden = next;
        }
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The UniTok encoder: timm's VisionTransformer over the hybrid embedding, without class token, registers, pooling or
/// head. <c>pos_embed</c> is UniTok's frozen all-zero (1, 1, D) parameter, stored and added as the reference does.
/// </summary>
internal sealed class ViTaminEncoder : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly HybridEmbed patch_embed;
    private readonly Parameter pos_embed;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public ViTaminEncoder(ViTaminShape shape) : base(nameof(ViTaminEncoder))
    {
        patch_embed = new HybridEmbed(shape);
        pos_embed = new Parameter(zeros(1, 1, shape.EmbedDim), requires_grad: false);
        blocks = nn.ModuleList(Enumerable.Range(0, shape.Depth).Select(_ => new VitBlock(shape)).ToArray());
        norm = nn.LayerNorm(shape.EmbedDim, 1e-6);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor images) // (B, 3, H, W) -> (B, L, D)
    {
        using var scope = NewDisposeScope();
        var tokens = patch_embed.call(images) + pos_embed;
        return Norm.Forward(norm, BlockStack.Forward(blocks, tokens), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>Nearest-neighbour x2 upsampling, then a 3x3 conv (reference <c>Upsample2d</c>).</summary>
internal sealed class Upsample2d : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly Conv2d conv;
    private SubPixel? subPixel; // derived for inference; a plain holder, never in the state_dict

    public Upsample2d(int inChannels, int outChannels) : base(nameof(Upsample2d))
    {
        conv = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>
    /// With the convolution rewrites: folds the 3x3 kernel into the four 2x2 kernels that act on the map before its
    /// upsampling. Nearest x2 upsampling repeats each pixel, so output pixel (2i + dy, 2j + dx) sees input rows
    /// {i - 1: tap 0; i: taps 1 + 2} for dy = 0 and {i: taps 0 + 1; i + 1: tap 2} for dy = 1, and likewise for columns.
    /// One convolution with the four kernels stacked (4 Cout outputs, padding 1, on the (H + 1) x (W + 1) grid) then does
    /// 4 x 4 instead of 9 x 4 multiply-adds per output pixel; the four phases interleave into the upsampled map.
    /// </summary>
    public void PrepareForInference(InferenceKernels kernels)
    {
        ResetForTraining();
        if (!kernels.RewriteConvolutions) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = conv.weight!.to(ScalarType.Float32);                                   // (Cout, Cin, 3, 3)
        Tensor Fold(Tensor taps, int dim, int phase) => phase == 0
            ? stack([taps.narrow(dim, 0, 1).squeeze(dim), taps.narrow(dim, 1, 2).sum(dim)], dim)
            : stack([taps.narrow(dim, 0, 2).sum(dim), taps.narrow(dim, 2, 1).squeeze(dim)], dim);
        var phases = new List<Tensor>();
        for (var dy = 0; dy < 2; dy++)
            for (var dx = 0; dx < 2; dx++)
                phases.Add(Fold(Fold(w, 2, dy), 3, dx));                                  // (Cout, Cin, 2, 2) each
        var weight = Nhwc.From(cat(phases.ToArray(), 0).to(conv.weight!.dtype));       // phase-major: (dy, dx, Cout)
        var bias = conv.bias!.repeat(4);
        subPixel = new SubPixel(weight.DetachFromDisposeScope(), bias.DetachFromDisposeScope());
    }

    public void ResetForTraining()
    {
        subPixel?.Weight.Dispose();
        subPixel?.Bias.Dispose();
        subPixel = null;
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (subPixel is null || is_grad_enabled())
            return conv.call(F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)).MoveToOuterDisposeScope();
        var (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        var channels = conv.weight!.shape[0];
        var phases = F.conv2d(x, subPixel.Weight, subPixel.Bias, padding: [1, 1]).permute(0, 2, 3, 1); // (N, H+1, W+1, 4 Cout)
        var output = empty([n, h, 2, w, 2, channels], phases.dtype, phases.device);
        for (var dy = 0; dy < 2; dy++)
            for (var dx = 0; dx < 2; dx++)
                output.select(2, dy).select(3, dx).copy_(phases.narrow(1, dy, h).narrow(2, dx, w).narrow(3, (2 * dy + dx) * channels, channels));
        return output.view(n, 2 * h, 2 * w, channels).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    private sealed record SubPixel(Tensor Weight, Tensor Bias); // (4 Cout, Cin, 2, 2) NHWC-laid, (4 Cout)
}

/// <summary>
/// The decoder's mirror of <see cref="MbConvLNBlock"/> (reference <c>InvMbConvLNBlock</c>): a strided block upsamples
/// its shortcut and, after the 1x1 expansion, its main path, both with <see cref="Upsample2d"/>.
/// </summary>
internal sealed class InvMbConvLNBlock : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly nn.Module<Tensor, Tensor> shortcut;
    private readonly LayerNorm2d pre_norm;
    private readonly Conv2d conv1_1x1;
    private readonly nn.Module<Tensor, Tensor> up;
    private readonly Conv2d conv2_kxk;
    private readonly Conv2d conv3_1x1;
    private readonly ServedConvolutions served = new();

    public InvMbConvLNBlock(int inChannels, int outChannels, int stride) : base(nameof(InvMbConvLNBlock))
    {
        var mid = MbConvLNBlock.MakeDivisible(outChannels * 4.0);
        shortcut = stride == 2 ? new Upsample2d(inChannels, outChannels)
            : inChannels != outChannels ? nn.Conv2d(inChannels, outChannels, 1)
            : nn.Identity();
        pre_norm = new LayerNorm2d(inChannels, gelu: false);
        conv1_1x1 = nn.Conv2d(inChannels, mid, 1);
        up = stride == 2 ? new Upsample2d(mid, mid) : nn.Identity();
        conv2_kxk = nn.Conv2d(mid, mid, 3, padding: 1, groups: mid);
        conv3_1x1 = nn.Conv2d(mid, outChannels, 1);
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => served.Prepare(conv2_kxk, kernels);

    public void ResetForTraining() => served.Reset();

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var kernels = served.Kernels;
        if (kernels.RewriteConvolutions && Nhwc.Is(x))
        {
            var rows = pre_norm.call(x).permute(0, 2, 3, 1);
            var expanded = up.call(F.gelu(Nhwc.Pointwise(conv1_1x1, rows, kernels)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1);
            var mid = Nhwc.DepthwiseGelu(conv2_kxk, served.TapMajor, expanded.contiguous(), 1, kernels);
            var skip = shortcut.call(x).permute(0, 2, 3, 1);
            return Nhwc.Pointwise(conv3_1x1, mid, kernels, skip).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
        }
        var y = up.call(F.gelu(conv1_1x1.call(pre_norm.call(x))));
        y = F.gelu(conv2_kxk.call(y));
        return (conv3_1x1.call(y) + shortcut.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder's last stage (reference <c>InvStem</c>): upsample + 3x3, LayerNorm2d + GELU, 3x3 to RGB.</summary>
internal sealed class InvStem : nn.Module<Tensor, Tensor>
{
    private readonly Upsample2d conv1;
    private readonly LayerNorm2d norm1;
    private readonly Conv2d conv2;

    public InvStem(int inChannels, int outChannels) : base(nameof(InvStem))
    {
        conv1 = new Upsample2d(inChannels, inChannels);
        norm1 = new LayerNorm2d(inChannels, gelu: true);
        conv2 = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        RegisterComponents();
    }

    public Parameter LastWeight => conv2.weight!;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return conv2.call(norm1.call(conv1.call(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// ViTaminDecoder: a fresh ViT of the encoder's shape without any position embedding, its final norm, then four x2
/// upsampling stages back to pixels: (B, L, D) -> (B, 3, 16 G, 16 G), unbounded.
/// </summary>
internal sealed class ViTaminDecoder : nn.Module<Tensor, Tensor>, IInferenceModule
{
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Upsample2d up_conv1;
    private readonly Sequential up_conv2;
    private readonly Sequential up_conv3;
    private readonly InvStem up_conv4;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public ViTaminDecoder(ViTaminShape shape) : base(nameof(ViTaminDecoder))
    {
        var (vit, wide, narrow) = shape.DecoderWidths;
        var (wideDepth, narrowDepth) = ViTaminShape.DecoderDepths;
        blocks = nn.ModuleList(Enumerable.Range(0, shape.Depth).Select(_ => new VitBlock(shape)).ToArray());
        norm = nn.LayerNorm(vit, 1e-6);
        up_conv1 = new Upsample2d(vit, wide);
        up_conv2 = nn.Sequential(Enumerable.Range(0, wideDepth)
            .Select(d => (nn.Module<Tensor, Tensor>)new InvMbConvLNBlock(wide, wide, d == 0 ? 2 : 1)));
        up_conv3 = nn.Sequential(Enumerable.Range(0, narrowDepth)
            .Select(d => (nn.Module<Tensor, Tensor>)new InvMbConvLNBlock(d == 0 ? wide : narrow, narrow, d == 0 ? 2 : 1)));
        up_conv4 = new InvStem(narrow, 3);
        RegisterComponents();
    }

    public Parameter LastLayer => up_conv4.LastWeight;

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    public override Tensor forward(Tensor tokens) // (B, L, D) -> (B, 3, H, W)
    {
        using var scope = NewDisposeScope();
        var (b, l, d) = (tokens.shape[0], tokens.shape[1], tokens.shape[2]);
        var grid = (long)Math.Round(Math.Sqrt(l));
        if (grid * grid != l) throw new ArgumentException($"The decoder needs a square token grid, got {l} tokens");
        var x = Norm.Forward(norm, BlockStack.Forward(blocks, tokens), kernels);
        x = x.view(b, grid, grid, d).permute(0, 3, 1, 2);                     // (B, D, G, G), token t at row t / G
        x = up_conv3.call(up_conv2.call(up_conv1.call(x)));
        return up_conv4.call(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torch's <c>nn.MultiheadAttention</c> as open_clip's text blocks use it (packed in_proj, out_proj; keys as torch's),
/// self-attention with a causal mask, computed through SDPA as PyTorch's own implementation does.
/// </summary>
internal sealed class ClipSelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int heads;

    public ClipSelfAttention(int width, int heads) : base(nameof(ClipSelfAttention))
    {
        this.heads = heads;
        in_proj_weight = new Parameter(empty(3 * width, width));
        in_proj_bias = new Parameter(zeros(3 * width));
        out_proj = nn.Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (B, T, W) -> (B, T, W), causal
    {
        using var scope = NewDisposeScope();
        var (b, t, w) = (x.shape[0], x.shape[1], x.shape[2]);
        var packed = Dense.Forward(x, in_proj_weight, in_proj_bias, InferenceKernels.Torch)
            .view(b, t, 3, heads, w / heads).permute(2, 0, 3, 1, 4);                // 3 x (B, H, T, hd)
        // open_clip passes an additive mask of -inf above the diagonal: exactly what is_causal masks.
        var attended = F.scaled_dot_product_attention(packed[0], packed[1], packed[2], is_casual: true);
        return Dense.Forward(out_proj, attended.transpose(1, 2).reshape(b, t, w), InferenceKernels.Torch).MoveToOuterDisposeScope();
    }
}

/// <summary>open_clip <c>ResidualAttentionBlock</c>: pre-LN (eps 1e-5) causal attention and a GELU (exact) MLP x4.</summary>
internal sealed class ClipResidualAttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm ln_1;
    private readonly ClipSelfAttention attn;
    private readonly LayerNorm ln_2;
    private readonly Sequential mlp;

    public ClipResidualAttentionBlock(int width, int heads) : base(nameof(ClipResidualAttentionBlock))
    {
        ln_1 = nn.LayerNorm(width, 1e-5);
        attn = new ClipSelfAttention(width, heads);
        ln_2 = nn.LayerNorm(width, 1e-5);
        mlp = nn.Sequential(("c_fc", nn.Linear(width, 4 * width)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(4 * width, width)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + attn.call(ln_1.call(x));
        x = x + mlp.call(ln_2.call(x));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>open_clip <c>Transformer</c>: the residual blocks (key <c>resblocks.{i}</c>).</summary>
internal sealed class ClipTransformer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ClipResidualAttentionBlock> resblocks;

    public ClipTransformer(int width, int layers, int heads) : base(nameof(ClipTransformer))
    {
        resblocks = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new ClipResidualAttentionBlock(width, heads)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in resblocks) x = block.call(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// open_clip <c>TextTransformer</c> as UniTok builds it (<c>_build_text_tower</c>: no class embedding, no layer
/// scale, exact GELU, LayerNorm eps 1e-5): token + learned position embeddings, causal blocks, final norm, the feature
/// at each row's largest token id (the end-of-text token), times <c>text_projection</c>.
/// </summary>
internal sealed class ClipTextTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter text_projection;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly ClipTransformer transformer;
    private readonly LayerNorm ln_final;

    public ClipTextTransformer(UniTokConfig config) : base(nameof(ClipTextTransformer))
    {
        ContextLength = config.TextContextLength;
        text_projection = new Parameter(empty(config.TextWidth, config.EmbedDim));
        token_embedding = nn.Embedding(config.TextVocabSize, config.TextWidth);
        positional_embedding = new Parameter(empty(config.TextContextLength, config.TextWidth));
        transformer = new ClipTransformer(config.TextWidth, config.TextLayers, config.TextHeads);
        ln_final = nn.LayerNorm(config.TextWidth, 1e-5);
        RegisterComponents();
    }

    public int ContextLength { get; }

    public long VocabularySize => token_embedding.weight!.shape[0];

    public override Tensor forward(Tensor text) // (T, context) int64 -> (T, E) float32, not normalised
    {
        using var scope = NewDisposeScope();
        if (text.dim() != 2 || text.shape[1] != ContextLength)
            throw new ArgumentException($"Token ids must be (T, {ContextLength}), got ({string.Join(", ", text.shape)}): the causal mask spans the whole context");
        var x = token_embedding.call(text) + positional_embedding;                // (T, C, W)
        x = ln_final.call(transformer.call(x));
        var eot = text.argmax(-1);                                                  // end-of-text has the largest id
        var pooled = x[arange(x.shape[0], device: x.device), eot];                  // (T, W)
        return pooled.matmul(text_projection).MoveToOuterDisposeScope();
    }
}

/// <summary>What the UniTok encoder side produces for a batch: each stage of <c>img_to_reconstructed_img</c>.</summary>
public sealed record UniTokEncodeOutput(
    Tensor EncoderTokens, // (B, L, D) encoder output
    Tensor Projected,     // (B, L, vocab_width) quant_proj output
    Tensor Codes,         // (B, L, vocab_width) unit-norm code vectors (straight-through value)
    Tensor Quant,         // (B, L, D) post_quant_proj output, what the decoder and the CLIP head read
    Tensor Indices,       // (B, K, L) int64
    Tensor VqLoss,        // scalar, mean over codebooks
    Tensor EntropyLoss,   // scalar, mean over codebooks (0 when le <= 0)
    Tensor Usage) : IDisposable // scalar, percent of codes used in this batch
{
    private Tensor[] All => [EncoderTokens, Projected, Codes, Quant, Indices, VqLoss, EntropyLoss, Usage];

    public void Dispose()
    {
        foreach (var t in All) t.Dispose();
    }

    internal UniTokEncodeOutput MoveToOuterDisposeScope()
    {
        foreach (var t in All) t.MoveToOuterDisposeScope();
        return this;
    }
}

/// <summary>The reference <c>forward</c>'s outputs: the training step's inputs.</summary>
public sealed record UniTokForwardOutput(
    Tensor ImgRec,                 // (vae_bs, 3, H, W) not clamped
    Tensor VqLoss,                 // scalar
    Tensor EntropyLoss,            // scalar
    Tensor CodebookUsages,         // scalar
    Tensor ClipImageFeatures,      // (B, E) normalised
    Tensor? ClipTextFeatures,      // (T, E) normalised, when text was given
    Tensor LogitScale) : IDisposable // scalar, exp(logit_scale)
{
    private Tensor?[] All => [ImgRec, VqLoss, EntropyLoss, CodebookUsages, ClipImageFeatures, ClipTextFeatures, LogitScale];

    public void Dispose()
    {
        foreach (var t in All) t?.Dispose();
    }

    internal UniTokForwardOutput MoveToOuterDisposeScope()
    {
        foreach (var t in All) t?.MoveToOuterDisposeScope();
        return this;
    }
}

/// <summary>The UniTok network. Field names are the reference checkpoint's keys.</summary>
public sealed class UniTokModel : nn.Module, ITokenizerModel
{
    private readonly ViTaminEncoder encoder;
    private readonly nn.Module<Tensor, Tensor> quant_proj;      // AttnProjection (D -> vocab_width) or Linear
    private readonly VectorQuantizerM quantizer;
    private readonly nn.Module<Tensor, Tensor> post_quant_proj; // AttnProjection (vocab_width -> D) or Linear
    private readonly ViTaminDecoder decoder;
    private readonly ClipTextTransformer text_encoder;
    private readonly LayerNorm fc_norm;
    private readonly Linear projection;
    private readonly Parameter logit_scale;                     // scalar, ln(1 / 0.07) at initialisation
    private InferenceKernels kernels = InferenceKernels.Torch;

    public UniTokModel(UniTokConfig config) : base(nameof(UniTokModel))
    {
        config.Validate();
        Config = config;
        var d = config.Encoder.EmbedDim;
        encoder = new ViTaminEncoder(config.Encoder);
        (quant_proj, post_quant_proj) = config.QuantProj == "attn"
            ? (new AttnProjection(d, config.VocabWidth, config.ProjectionHeads), new AttnProjection(config.VocabWidth, d, config.ProjectionHeads))
            : ((nn.Module<Tensor, Tensor>)nn.Linear(d, config.VocabWidth), (nn.Module<Tensor, Tensor>)nn.Linear(config.VocabWidth, d));
        quantizer = new VectorQuantizerM(config.Quantizer);
        decoder = new ViTaminDecoder(config.Encoder);
        text_encoder = new ClipTextTransformer(config);
        fc_norm = nn.LayerNorm(d, 1e-6);
        projection = nn.Linear(d, config.EmbedDim);
        logit_scale = new Parameter(tensor((float)Math.Log(1 / 0.07)));
        RegisterComponents();
    }

    public UniTokConfig Config { get; }

    /// <inheritdoc/>
    public ModelDescription Description => new(
        ModelKinds.UniTok, Config.ImgSize, Config.NumCodebooks, Config.CodebookSize, Config.PixelTokens, Config.GridSize,
        SemanticTokens: 0, SemanticWidth: 0, Config.EmbedDim, JsonSerializer.Serialize(UniTokArgs.FromConfig(Config)));

    /// <summary>Precision of the encoder and decoder stacks; projections, quantizer, CLIP head and text tower stay float32.</summary>
    public ScalarType ComputeDtype { get; private set; } = ScalarType.Float32;

    /// <summary>Reference <c>get_last_layer</c> (<c>decoder.get_last_param</c>): the weight the adaptive GAN loss weight is measured on.</summary>
    public Parameter LastLayer => decoder.LastLayer;

    /// <summary>
    /// Readies a loaded model for serving: eval mode; the encoder and decoder (conv and ViT stacks) in
    /// <paramref name="dtype"/> (bfloat16 on GPUs), while the projections and the quantizer keep float32 as the reference
    /// does under autocast, and the CLIP head and text tower too (they are small); <paramref name="kernels"/> for every
    /// layer that takes them (torch's when null). Switching back to training mode drops the kernels.
    /// </summary>
    public UniTokModel PrepareForInference(ScalarType dtype, InferenceKernels? kernels = null)
    {
        eval();
        if (dtype != ComputeDtype)
        {
            encoder.to(dtype);
            decoder.to(dtype);
            ComputeDtype = dtype;
        }
        this.kernels = kernels ?? InferenceKernels.Torch;
        foreach (var module in modules().OfType<IInferenceModule>()) module.PrepareForInference(this.kernels);
        return this;
    }

    void ITokenizerModel.PrepareForInference(Device device, ScalarType dtype, CudaFastPaths fastPaths)
    {
        if (device.type != DeviceType.CPU) this.to(device);
        PrepareForInference(dtype, InferenceKernels.For(device, fastPaths));
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

    /// <summary>Images (B, 3, H, W) in [-1, 1] to token ids (B, K, L); UniTok has no semantic tokens.</summary>
    public TokenizeOutput Tokenize(Tensor images) => new(ImageToIndices(images), SemanticTokens: null);

    /// <summary>Reference <c>img_to_idx</c>: images to token ids (B, K, L) int64.</summary>
    public Tensor ImageToIndices(Tensor images)
    {
        using var scope = NewDisposeScope();
        return quantizer.FeaturesToIndices(quant_proj.call(EncoderTokens(images))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Reference <c>idx_to_img</c> without its final clamp: ids (B, K, L) to reconstructions (B, 3, H, W) float32. The
    /// reference clamps to [-1, 1] here; <see cref="ITokenizerModel"/> returns unclamped values and evaluations clamp.
    /// </summary>
    public Tensor IndicesToImage(Tensor indices)
    {
        using var scope = NewDisposeScope();
        return Decode(post_quant_proj.call(quantizer.IndicesToFeatures(indices))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Reference <c>img_to_reconstructed_img</c> without its final clamp (see <see cref="IndicesToImage"/>): encode,
    /// quantize, decode, with the ids the quantizer chose.
    /// </summary>
    public Reconstruction Reconstruct(Tensor images, bool withEmbedding = false)
    {
        using var scope = NewDisposeScope();
        var quantized = quantizer.Quantize(quant_proj.call(EncoderTokens(images)));
        var quant = post_quant_proj.call(quantized.Quantized);
        var recon = Decode(quant);
        // The straight-through forward value is the normalised code, i.e. idx_to_f of the ids: encode_image's path.
        var embedding = withEmbedding ? F.normalize(ClipHead(quant), p: 2, dim: -1).MoveToOuterDisposeScope() : null;
        return new Reconstruction(recon.MoveToOuterDisposeScope(), quantized.Indices.MoveToOuterDisposeScope(), embedding);
    }

    /// <summary>Every stage of encode and quantize, the quantizer's losses and usage (it updates its usage statistics).</summary>
    public UniTokEncodeOutput Encode(Tensor images)
    {
        using var scope = NewDisposeScope();
        var tokens = EncoderTokens(images);
        var projected = quant_proj.call(tokens);
        var q = quantizer.Quantize(projected);
        var quant = post_quant_proj.call(q.Quantized);
        return new UniTokEncodeOutput(tokens, projected, q.Quantized, quant, q.Indices, q.VqLoss, q.EntropyLoss, q.Usage).MoveToOuterDisposeScope();
    }

    /// <summary>The decoder: post-quantization features (B, L, D) to pixels (B, 3, H, W) float32, unbounded.</summary>
    public Tensor Decode(Tensor quant)
    {
        using var scope = NewDisposeScope();
        return decoder.call(quant.to(ComputeDtype)).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>The L2-normalised CLIP image embedding (B, embed_dim), through the quantizer (reference <c>encode_image(x, normalize=True)</c>).</summary>
    public Tensor EncodeImage(Tensor images) => EncodeImage(images, normalize: true);

    /// <summary>
    /// Reference <c>encode_image</c>: ids from the encoder, back to their code vectors, <c>post_quant_proj</c>, mean over
    /// tokens, <c>fc_norm</c>, <c>projection</c>; L2-normalised when <paramref name="normalize"/>.
    /// </summary>
    public Tensor EncodeImage(Tensor images, bool normalize)
    {
        using var scope = NewDisposeScope();
        var indices = quantizer.FeaturesToIndices(quant_proj.call(EncoderTokens(images)));
        var quant = post_quant_proj.call(quantizer.IndicesToFeatures(indices));
        var features = ClipHead(quant);
        return (normalize ? F.normalize(features, p: 2, dim: -1) : features).MoveToOuterDisposeScope();
    }

    /// <summary>Reference <c>encode_text</c>: token ids (T, context) to text embeddings (T, embed_dim), L2-normalised when asked.</summary>
    public Tensor EncodeText(Tensor textIds, bool normalize = false)
    {
        using var scope = NewDisposeScope();
        var features = text_encoder.call(textIds);
        return (normalize ? F.normalize(features, p: 2, dim: -1) : features).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Reference <c>forward(img, vae_bs, text)</c>: the training step's inputs. Reconstructs the first
    /// <paramref name="vaeBatch"/> images (not clamped); the CLIP image features come from the straight-through quantized
    /// tokens of the whole batch.
    /// </summary>
    public UniTokForwardOutput Forward(Tensor images, int vaeBatch, Tensor? text = null)
    {
        using var scope = NewDisposeScope();
        var q = quantizer.Quantize(quant_proj.call(EncoderTokens(images)));
        var quant = post_quant_proj.call(q.Quantized);
        var recon = Decode(quant[..vaeBatch]);
        var clipImage = F.normalize(ClipHead(quant), p: 2, dim: -1);
        var clipText = text is null ? null : EncodeText(text, normalize: true);
        return new UniTokForwardOutput(recon, q.VqLoss, q.EntropyLoss, q.Usage, clipImage, clipText, logit_scale.exp()).MoveToOuterDisposeScope();
    }

    /// <summary>The encoder: images (B, 3, H, W) in [-1, 1], used as they are (no scaling layer), to tokens (B, L, D) float32.</summary>
    internal Tensor EncoderTokens(Tensor images)
    {
        using var scope = NewDisposeScope();
        var size = Config.ImgSize;
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != size || images.shape[3] != size)
            throw new ArgumentException($"Images must be (B, 3, {size}, {size}), got ({string.Join(", ", images.shape)})");
        return encoder.call(images.to(ComputeDtype)).to(float32).MoveToOuterDisposeScope();
    }

    internal ClipTextTransformer TextEncoder => text_encoder;

    private Tensor ClipHead(Tensor quant) // (B, L, D) -> (B, E)
    {
        using var scope = NewDisposeScope();
        return Dense.Forward(projection, Norm.Forward(fc_norm, quant.mean([1]), kernels), kernels).MoveToOuterDisposeScope();
    }
}
