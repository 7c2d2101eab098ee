using TorchSharp;
using TorchSharp.Modules;
using WinTok.Checkpoints;
using WinTok.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Training;

// The frozen DINOv2 backbone of WinTok's discriminator (Oquab et al., "DINOv2: Learning Robust Visual Features
// without Supervision", 2023; reference models/dinov2.py and models/layers/*, as made by models/discrim.py
// make_dinov2_model). Field names are the reference's state_dict keys, so dinov2_vits14_pretrain.pth loads key by key.

/// <summary>
/// Shape of a DINOv2 ViT as <c>make_dinov2_model</c> builds it: image 518 (a 37 x 37 position grid plus the class
/// token), patch 14, LayerScale, exact GELU, LayerNorm eps 1e-6, biases everywhere, no registers.
/// </summary>
/// <param name="InterpolateOffset">Added to the target grid before dividing by the stored grid to get the bicubic
/// scale factor (DINO's "historical kludge"); the resize then uses that scale for its coordinate mapping.</param>
public sealed record DinoConfig(
    int EmbedDim = 384,
    int Depth = 12,
    int Heads = 6,
    double MlpRatio = 4,
    int PatchSize = 14,
    int ImageSize = 518,
    double InterpolateOffset = 0.1,
    double LayerNormEps = 1e-6)
{
    /// <summary>DINOv2 ViT-S/14, the reference discriminator's backbone (<c>vit_small</c>).</summary>
    public static DinoConfig ViTSmall14 { get; } = new();

    /// <summary>
    /// The shape a DINOv2 state dict (e.g. <c>dinov2_vits14_pretrain.pth</c>) has: width from <c>cls_token</c>, depth from
    /// the blocks, patch from <c>patch_embed.proj.weight</c>, the position grid from <c>pos_embed</c>, the MLP ratio from
    /// <c>fc1</c>. Shapes do not tell the head count: <paramref name="heads"/>, else DINOv2's 64-wide heads (ViT-S 6,
    /// B 12, L 16, g 24).
    /// </summary>
    /// <exception cref="ArgumentException">A tensor the shape is read from is missing or misshaped; names it.</exception>
    public static DinoConfig Infer(IReadOnlyDictionary<string, Tensor> stateDict, int? heads = null)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        Tensor Get(string key, int dims) => stateDict.TryGetValue(key, out var t) && t.dim() == dims ? t
            : throw new ArgumentException($"The DINOv2 weights have no {dims}-d '{key}' to read the backbone's shape from");
        var embed = (int)Get("cls_token", 3).shape[2];
        var patch = (int)Get("patch_embed.proj.weight", 4).shape[2];
        var tokens = Get("pos_embed", 3).shape[1] - 1;
        var grid = (int)Math.Round(Math.Sqrt(tokens));
        if (grid * grid != tokens) throw new ArgumentException($"The DINOv2 pos_embed has {tokens} patch positions, not a square grid");
        var depth = 0;
        while (stateDict.ContainsKey($"blocks.{depth}.norm1.weight")) depth++;
        var hidden = Get("blocks.0.mlp.fc1.weight", 2).shape[0];
        var config = new DinoConfig(embed, depth, heads ?? Math.Max(1, embed / 64), (double)hidden / embed, patch, grid * patch);
        config.Validate();
        return config;
    }

    public int PositionGrid => ImageSize / PatchSize;

    public int MlpHidden => (int)(EmbedDim * MlpRatio);

    internal void Validate()
    {
        var problems = new List<string>();
        if (EmbedDim <= 0 || Depth <= 0 || Heads <= 0 || PatchSize <= 0 || ImageSize < PatchSize || MlpHidden <= 0)
            problems.Add($"every size must be positive (embed {EmbedDim}, depth {Depth}, heads {Heads}, patch {PatchSize}, image {ImageSize}, mlp {MlpHidden})");
        else if (EmbedDim % Heads != 0)
            problems.Add($"embed dim {EmbedDim} is not divisible by {Heads} heads");
        if (problems.Count > 0) throw new ArgumentException("Impossible DINOv2 configuration: " + string.Join("; ", problems));
    }
}

/// <summary>Non-overlapping patch projection (reference <c>PatchEmbed</c>): (B, 3, H, W) -> (B, HW/p^2, D).</summary>
internal sealed class DinoPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public DinoPatchEmbed(int patch, int dim) : base(nameof(DinoPatchEmbed))
    {
        proj = nn.Conv2d(3, dim, patch, stride: patch, padding: 0L);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return Conv.Forward(proj, pixels).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Softmax attention as the reference's <c>Attention</c> computes it when xformers is absent: q scaled first, then
/// q k^T, softmax, times v. (With xformers the reference runs memory-efficient attention: the same function.)
/// </summary>
internal sealed class DinoAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int heads;

    public DinoAttention(int dim, int heads) : base(nameof(DinoAttention))
    {
        this.heads = heads;
        qkv = nn.Linear(dim, dim * 3);
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (B, N, C) -> (B, N, C)
    {
        using var scope = NewDisposeScope();
        var (b, n, c) = (x.shape[0], x.shape[1], x.shape[2]);
        var kernels = InferenceKernels.Torch;
        var packed = Dense.Forward(qkv, x, kernels).reshape(b, n, 3, heads, c / heads).permute(2, 0, 3, 1, 4); // (3, B, H, N, hd)
        var q = packed[0] * Math.Pow(c / heads, -0.5);
        var scores = Autocast.Low(q)!.matmul(Autocast.Low(packed[1])!.transpose(-2, -1));               // (B, H, N, N)
        var weights = Autocast.LowPrecision is null ? scores.softmax(-1) : scores.to(ScalarType.Float32).softmax(-1);
        var attended = Autocast.Low(weights)!.matmul(Autocast.Low(packed[2])!);                           // (B, H, N, hd)
        return Dense.Forward(proj, attended.transpose(1, 2).reshape(b, n, c), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>Per-channel learned scale of a residual branch (reference <c>LayerScale</c>, key <c>gamma</c>).</summary>
internal sealed class LayerScale : nn.Module<Tensor, Tensor>
{
    private readonly Parameter gamma;

    public LayerScale(int dim, double initValue) : base(nameof(LayerScale))
    {
        gamma = new Parameter(full(dim, initValue));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * gamma;
}

/// <summary>fc1, exact (erf) GELU, fc2 (reference <c>Mlp</c>).</summary>
internal sealed class DinoMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public DinoMlp(int dim, int hidden) : base(nameof(DinoMlp))
    {
        fc1 = nn.Linear(dim, hidden);
        fc2 = nn.Linear(hidden, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var kernels = InferenceKernels.Torch;
        return Dense.Forward(fc2, F.gelu(Dense.Forward(fc1, x, kernels)), kernels).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-LN block with LayerScale on both branches (reference <c>Block</c>, no drop-path).</summary>
internal sealed class DinoBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly DinoAttention attn;
    private readonly LayerScale ls1;
    private readonly LayerNorm norm2;
    private readonly DinoMlp mlp;
    private readonly LayerScale ls2;

    public DinoBlock(DinoConfig config) : base(nameof(DinoBlock))
    {
        norm1 = nn.LayerNorm(config.EmbedDim, config.LayerNormEps);
        attn = new DinoAttention(config.EmbedDim, config.Heads);
        ls1 = new LayerScale(config.EmbedDim, 1.0);
        norm2 = nn.LayerNorm(config.EmbedDim, config.LayerNormEps);
        mlp = new DinoMlp(config.EmbedDim, config.MlpHidden);
        ls2 = new LayerScale(config.EmbedDim, 1.0);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var kernels = InferenceKernels.Torch;
        x = x + ls1.call(attn.call(Norm.Forward(norm1, x, kernels)));
        x = x + ls2.call(mlp.call(Norm.Forward(norm2, x, kernels)));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Outputs of one block, split as the reference's <c>get_intermediate_layers(..., return_class_token=True)</c>.</summary>
/// <param name="PatchTokens">(B, L, D) patch tokens after the block, without the final norm.</param>
/// <param name="ClassToken">(B, D) the class token after the block.</param>
public sealed record DinoFeatures(Tensor PatchTokens, Tensor ClassToken);

/// <summary>
/// DINOv2 vision transformer (reference <c>DinoVisionTransformer</c>), used frozen: only
/// <see cref="IntermediateLayers"/>, the discriminator's feature taps, is needed.
/// </summary>
public sealed class DinoVisionTransformer : nn.Module
{
    private readonly Parameter cls_token;   // (1, 1, D)
    private readonly Parameter pos_embed;   // (1, G*G + 1, D), G = image / patch
    private readonly Parameter mask_token;  // (1, D), unused here but part of the checkpoint
    private readonly DinoPatchEmbed patch_embed;
    private readonly ModuleList<DinoBlock> blocks;
    private readonly LayerNorm norm;        // unused by the discriminator (norm=False), part of the checkpoint

    public DinoVisionTransformer(DinoConfig config) : base(nameof(DinoVisionTransformer))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        cls_token = new Parameter(zeros(1, 1, config.EmbedDim));
        pos_embed = new Parameter(zeros(1, config.PositionGrid * config.PositionGrid + 1, config.EmbedDim));
        mask_token = new Parameter(zeros(1, config.EmbedDim));
        patch_embed = new DinoPatchEmbed(config.PatchSize, config.EmbedDim);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth).Select(_ => new DinoBlock(config)).ToArray());
        norm = nn.LayerNorm(config.EmbedDim, config.LayerNormEps);
        RegisterComponents();
        Freeze();
    }

    public DinoConfig Config { get; }

    /// <summary>Reads a DINOv2 state dict (e.g. <c>dinov2_vits14_pretrain.pth</c>) strictly into a frozen backbone.</summary>
    public static DinoVisionTransformer Load(string path, DinoConfig config)
    {
        using var checkpoint = CheckpointFile.Read(path);
        return FromStateDict(checkpoint.StateDict, config);
    }

    /// <summary>A frozen backbone holding <paramref name="stateDict"/>; any missing, unexpected or misshaped key fails naming it.</summary>
    public static DinoVisionTransformer FromStateDict(IReadOnlyDictionary<string, Tensor> stateDict, DinoConfig config)
    {
        var backbone = new DinoVisionTransformer(config);
        try
        {
            StateDictLoader.Load(backbone, stateDict, strict: true);
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
        return backbone;
    }

    /// <summary>
    /// Runs the blocks on images (B, 3, H, W), H and W multiples of the patch, and returns the outputs of the blocks
    /// at <paramref name="depths"/> (0-based), without the final norm, as the reference's
    /// <c>get_intermediate_layers(x, n=depths, return_class_token=True, norm=False)</c>.
    /// </summary>
    public IReadOnlyList<DinoFeatures> IntermediateLayers(Tensor images, IReadOnlyList<int> depths)
    {
        using var scope = NewDisposeScope();
        if (images.dim() != 4 || images.shape[2] % Config.PatchSize != 0 || images.shape[3] % Config.PatchSize != 0)
            throw new ArgumentException($"DINOv2 needs images (B, 3, H, W) with H and W multiples of {Config.PatchSize}, got ({string.Join(", ", images.shape)})");
        if (depths.Any(d => d < 0 || d >= Config.Depth))
            throw new ArgumentException($"Block depths must be in [0, {Config.Depth}), got [{string.Join(", ", depths)}]");
        var x = PrepareTokens(images);
        var outputs = new List<DinoFeatures>();
        for (var i = 0; i < blocks.Count; i++)
        {
            x = blocks[i].call(x);
            if (depths.Contains(i)) outputs.Add(new DinoFeatures(x[.., 1..].MoveToOuterDisposeScope(), x[.., 0].MoveToOuterDisposeScope()));
        }
        if (outputs.Count != depths.Count)
            throw new ArgumentException($"Found {outputs.Count} of {depths.Count} requested blocks; depths must be distinct");
        return outputs;
    }

    /// <summary>Patch tokens with the class token in front, plus (resized) positions: (B, 1 + HW/p^2, D).</summary>
    private Tensor PrepareTokens(Tensor images)
    {
        var (w, h) = (images.shape[2], images.shape[3]); // the reference names dims 2 and 3 w and h
        var patches = patch_embed.call(images);
        var x = cat([cls_token.expand(patches.shape[0], -1, -1), patches.to(cls_token.dtype)], 1);
        return x + InterpolatePositions(x, w, h);
    }

    /// <summary>
    /// Reference <c>interpolate_pos_encoding</c>: the stored G x G grid resized bicubically (no antialias) to the
    /// input's grid with scale factors (w0 + offset) / G, (h0 + offset) / G. The explicit scale also drives the
    /// coordinate mapping, so the result differs slightly from resizing to the target size.
    /// </summary>
    private Tensor InterpolatePositions(Tensor tokens, long w, long h)
    {
        var patchCount = tokens.shape[1] - 1;
        var stored = pos_embed.shape[1] - 1;
        if (patchCount == stored && w == h) return pos_embed;
        var positions = pos_embed.to(ScalarType.Float32);
        var classPosition = positions[.., 0];                // (1, D)
        var patchPositions = positions[.., 1..];             // (1, G*G, D)
        var dim = tokens.shape[2];
        var (w0, h0) = (w / Config.PatchSize, h / Config.PatchSize);
        var grid = (long)Math.Sqrt(stored);
        if (grid * grid != stored) throw new InvalidOperationException($"pos_embed holds {stored} patch positions, not a square grid");
        var square = patchPositions.reshape(1, grid, grid, dim).permute(0, 3, 1, 2);
        var resized = Config.InterpolateOffset != 0
            ? F.interpolate(square, scale_factor: [(w0 + Config.InterpolateOffset) / grid, (h0 + Config.InterpolateOffset) / grid],
                mode: InterpolationMode.Bicubic, align_corners: false, antialias: false)
            : F.interpolate(square, size: [w0, h0], mode: InterpolationMode.Bicubic, align_corners: false, antialias: false);
        if (resized.shape[2] != w0 || resized.shape[3] != h0)
            throw new InvalidOperationException($"Position grid resized to {resized.shape[2]}x{resized.shape[3]}, expected {w0}x{h0}");
        var flat = resized.permute(0, 2, 3, 1).reshape(1, -1, dim);
        return cat([classPosition.unsqueeze(0), flat], 1).to(tokens.dtype);
    }

    private void Freeze()
    {
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }
}
