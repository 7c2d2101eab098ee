using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using WinTok.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Training;

// WinTok's discriminator (reference models/discrim.py DinoDiscV2, built by models/__init__.py build_discriminator):
// a frozen DINOv2 backbone read at five depths, each depth scored per token by a small trainable 1-D conv head, after
// StyleGAN-T (Sauer et al. 2023). Only the heads and the input normalisation buffers are in its state_dict: the
// reference keeps the backbone in a Python list to hide it from the module tree, and so does this class.

/// <summary>Conv1d -> GroupNorm(32) -> LeakyReLU(0.2) (reference <c>make_block</c>); keys <c>0.*</c> and <c>1.*</c>.</summary>
internal sealed class DiscriminatorBlock : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "0")] private readonly Conv1d conv;
    [ComponentName(Name = "1")] private readonly GroupNorm norm;
    private readonly long padding;

    public DiscriminatorBlock(int channels, int kernelSize, int groups, double eps) : base(nameof(DiscriminatorBlock))
    {
        padding = kernelSize / 2;
        conv = nn.Conv1d(channels, channels, kernelSize, padding: padding, padding_mode: PaddingModes.Circular);
        norm = nn.GroupNorm(groups, channels, eps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (B, C, L) -> (B, C, L)
    {
        using var scope = NewDisposeScope();
        // torch's Conv1d with circular padding: pad the sequence end-around, then a convolution without padding.
        var padded = padding > 0 ? F.pad(x, [padding, padding], PaddingModes.Circular) : x;
        var y = F.conv1d(Autocast.Low(padded)!, Autocast.Low(conv.weight)!, Autocast.Low(conv.bias), stride: 1, padding: 0);
        y = norm.call(Autocast.Full(y));
        return F.leaky_relu(y, 0.2).MoveToOuterDisposeScope();
    }

    public void Reset(double gain)
    {
        using var noGrad = no_grad();
        nn.init.xavier_normal_(conv.weight!, gain);
        conv.bias!.zero_();
        norm.weight!.fill_(1);
        norm.bias!.zero_();
    }
}

/// <summary><c>(fn(x) + x) / sqrt(2)</c> (reference <c>ResidualBlock</c>; key <c>fn.*</c>).</summary>
internal sealed class DiscriminatorResidual : nn.Module<Tensor, Tensor>
{
    private static readonly double Ratio = 1 / Math.Sqrt(2); // numpy's 1 / np.sqrt(2), a float64 scalar
    private readonly DiscriminatorBlock fn;

    public DiscriminatorResidual(DiscriminatorBlock block) : base(nameof(DiscriminatorResidual))
    {
        fn = block;
        RegisterComponents();
    }

    public DiscriminatorBlock Block => fn;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fn.call(x).add(x).mul_(Ratio).MoveToOuterDisposeScope();
    }
}

/// <summary>One head: block(k=1), residual block(k), Conv1d to one logit per token (keys <c>0.*</c>, <c>1.fn.*</c>, <c>2.*</c>).</summary>
internal sealed class DiscriminatorHead : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "0")] private readonly DiscriminatorBlock first;
    [ComponentName(Name = "1")] private readonly DiscriminatorResidual residual;
    [ComponentName(Name = "2")] private readonly Conv1d output;

    public DiscriminatorHead(int channels, int kernelSize, int groups, double eps) : base(nameof(DiscriminatorHead))
    {
        first = new DiscriminatorBlock(channels, 1, groups, eps);
        residual = new DiscriminatorResidual(new DiscriminatorBlock(channels, kernelSize, groups, eps));
        output = nn.Conv1d(channels, 1, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (B, C, L) -> (B, 1, L)
    {
        using var scope = NewDisposeScope();
        var y = residual.call(first.call(x));
        return F.conv1d(Autocast.Low(y)!, Autocast.Low(output.weight)!, Autocast.Low(output.bias)).MoveToOuterDisposeScope();
    }

    public void Reset(double gain)
    {
        first.Reset(gain);
        residual.Block.Reset(gain);
        using var noGrad = no_grad();
        nn.init.xavier_normal_(output.weight!, gain);
        output.bias!.zero_();
    }
}

/// <summary>Settings of <see cref="DinoDiscriminator"/>; the defaults are the reference's <c>build_discriminator</c>.</summary>
/// <param name="KeyDepths">Backbone blocks whose outputs the heads score.</param>
/// <param name="KernelSize">The residual conv's width (<c>dino_kernel_size</c>).</param>
/// <param name="Groups">GroupNorm groups (<c>disc_norm = 'gn'</c>).</param>
/// <param name="NormEps">GroupNorm eps.</param>
/// <param name="InitGain">xavier_normal gain of the head convolutions (<c>disc_init = -0.5</c> means gain 0.5).</param>
public sealed record DiscriminatorConfig(int[] KeyDepths, int KernelSize = 9, int Groups = 32, double NormEps = 1e-6, double InitGain = 0.5)
{
    public static DiscriminatorConfig Reference { get; } = new([0, 2, 5, 8, 11]);
}

/// <summary>
/// The reference's <c>DinoDiscV2</c>: normalises [-1, 1] images to ImageNet statistics, brings them to the largest
/// multiple of the patch size (one random crop for the whole batch or an <c>area</c> resize, by a fair coin), reads
/// the frozen backbone at <see cref="DiscriminatorConfig.KeyDepths"/> and scores every token of every depth:
/// logits (B, depths * L). The coin and the crop come from the injected <see cref="ITrainingRandomness"/>.
/// </summary>
public sealed class DinoDiscriminator : nn.Module
{
    private readonly Tensor x_scale; // (1, 3, 1, 1) 0.5 / std
    private readonly Tensor x_shift; // (1, 3, 1, 1) (0.5 - mean) / std
    private readonly ModuleList<DiscriminatorHead> heads;
    private readonly FrozenBackbone dino;

    /// <summary>Heads for <paramref name="backbone"/> (owned from now on), initialised as the reference initialises them.</summary>
    public DinoDiscriminator(DinoVisionTransformer backbone, DiscriminatorConfig config) : base(nameof(DinoDiscriminator))
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(config);
        var channels = backbone.Config.EmbedDim;
        if (channels % config.Groups != 0)
            throw new ArgumentException($"GroupNorm needs the backbone width {channels} to be a multiple of {config.Groups} groups");
        if (config.KeyDepths.Length == 0 || config.KeyDepths.Any(d => d < 0 || d >= backbone.Config.Depth))
            throw new ArgumentException($"Key depths [{string.Join(", ", config.KeyDepths)}] must be blocks of a {backbone.Config.Depth}-block backbone");
        Config = config;
        // ImageNet statistics in float32, combined as the reference's Python does (0.5 / std is reciprocal(std) * 0.5).
        using (var mean = tensor(new[] { 0.485f, 0.456f, 0.406f }))
        using (var std = tensor(new[] { 0.229f, 0.224f, 0.225f }))
        using (var reciprocal = std.reciprocal())
        using (var centred = mean.neg().add_(0.5))
        {
            x_scale = reciprocal.mul(0.5).reshape(1, 3, 1, 1);
            x_shift = centred.div(std).reshape(1, 3, 1, 1);
        }
        heads = nn.ModuleList(config.KeyDepths.Select(_ => new DiscriminatorHead(channels, config.KernelSize, config.Groups, config.NormEps)).ToArray());
        dino = new FrozenBackbone(backbone);
        RegisterComponents();
        ResetHeads();
    }

    public DiscriminatorConfig Config { get; }

    public DinoVisionTransformer Backbone => dino.Network;

    /// <summary>The reference's <c>init_weights(disc, -0.5)</c>: xavier_normal(gain) conv weights, zero biases, GroupNorm 1/0.</summary>
    public void ResetHeads()
    {
        foreach (var head in heads) head.Reset(Config.InitGain);
    }

    /// <summary>Moves heads, buffers and the hidden backbone to <paramref name="device"/>. Build optimizers afterwards.</summary>
    public DinoDiscriminator MoveTo(Device device)
    {
        this.to(device);
        dino.Network.to(device);
        return this;
    }

    /// <summary>Images (B, 3, H, W) in [-1, 1] to logits (B, depths * L), L = patches of the cropped or resized image.</summary>
    public Tensor Forward(Tensor images, ITrainingRandomness random)
    {
        using var scope = NewDisposeScope();
        return Score(Preprocess(images, random)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The backbone's input (float32, autocast off as in the reference): ImageNet normalisation, then the largest
    /// multiple of the patch size by one random crop for the batch (coin at most 0.5) or an <c>area</c> resize;
    /// bicubic when the image is not larger than that in both dimensions.
    /// </summary>
    internal Tensor Preprocess(Tensor images, ITrainingRandomness random)
    {
        using var scope = NewDisposeScope();
        using var fullPrecision = Autocast.Suspend();
        var patch = dino.Network.Config.PatchSize;
        var x = (x_scale * images.to(ScalarType.Float32)).add_(x_shift);
        var (h, w) = (x.shape[2], x.shape[3]);
        var (nearH, nearW) = (h / patch * patch, w / patch * patch);
        if (h > nearH && w > nearW)
        {
            if (random.ResizeCoin() <= 0.5)
            {
                var (top, left) = random.CropOffset(h - nearH + 1, w - nearW + 1);
                x = x.narrow(2, top, nearH).narrow(3, left, nearW);
            }
            else
            {
                x = F.interpolate(x, size: [nearH, nearW], mode: InterpolationMode.Area);
            }
        }
        else
        {
            x = F.interpolate(x, size: [nearH, nearW], mode: InterpolationMode.Bicubic, align_corners: false);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Two preprocessed batches (<see cref="Preprocess"/>) scored in one backbone pass: every op of the backbone and
    /// the heads works per sample, so the logits are those of two calls, for half the launches.
    /// </summary>
    internal (Tensor First, Tensor Second) ScoreBoth(Tensor first, Tensor second)
    {
        using var scope = NewDisposeScope();
        var logits = Score(cat([first, second], 0));
        var n = first.shape[0];
        return (logits.narrow(0, 0, n).MoveToOuterDisposeScope(), logits.narrow(0, n, logits.shape[0] - n).MoveToOuterDisposeScope());
    }

    /// <summary>Backbone features at the key depths, each (patch + class token) scored per token by its head.</summary>
    internal Tensor Score(Tensor x)
    {
        using var scope = NewDisposeScope();
        var features = dino.Network.IntermediateLayers(x, Config.KeyDepths);
        var b = x.shape[0];
        var predictions = features.Select((feature, i) =>
        {
            var tokens = (feature.PatchTokens.to(ScalarType.Float32) + feature.ClassToken.to(ScalarType.Float32).unsqueeze(1)).transpose(1, 2); // (B, C, L)
            return heads[i].call(tokens).view(b, -1);
        }).ToArray();
        return cat(predictions, 1).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) dino.Network.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>Holds the backbone outside the module tree, so it is neither in the state_dict nor among the parameters.</summary>
    private sealed class FrozenBackbone(DinoVisionTransformer network)
    {
        public DinoVisionTransformer Network { get; } = network;
    }
}
