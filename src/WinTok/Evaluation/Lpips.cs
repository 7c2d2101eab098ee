using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// LPIPS, the learned perceptual distance of Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
// Perceptual Metric" (CVPR 2018, arXiv 1801.03924), in the two forms WinTok uses:
//  - the training loss (WinTok models/modules/lpips.py @ eb0452e, weights external/lpips_with_vgg.pth): VGG16 slices,
//    input scaled by multiplying with a float32 reciprocal, features normalised by sqrt(sum x^2 + 1e-9) + 1e-10;
//  - the evaluation metric, the pip `lpips` 0.1.4 package (richzhang/PerceptualSimilarity lpips/lpips.py,
//    lpips/pretrained_networks.py) as LPIPS(net='alex') and LPIPS(net='vgg'): torchvision AlexNet / VGG16 features
//    (alexnet-owt-7be5be79.pth / vgg16-397923af.pth, keys features.N.*) plus the v0.1 linear heads
//    (weights/v0.1/alex.pth, vgg.pth, keys linK.model.1.weight); input scaled by dividing, features normalised by
//    sqrt(sum x^2) + 1e-10.
// Both sum, over five backbone taps, the spatial mean of a 1x1 conv (no bias) of the squared difference of the
// channel-normalised features. Module keys follow the training reference (net.sliceS.J.*, lins.K.model.1.weight);
// the pip variants' files are translated by their layouts.

/// <summary>Which LPIPS: the WinTok training loss or one of the pip package's evaluation networks.</summary>
public enum LpipsVariant
{
    /// <summary>WinTok's training LPIPS-VGG (<c>models/modules/lpips.py</c>, <c>lpips_with_vgg.pth</c>).</summary>
    TrainingVgg,

    /// <summary>pip <c>lpips.LPIPS(net='alex')</c>, v0.1 heads over torchvision AlexNet features.</summary>
    Alex,

    /// <summary>pip <c>lpips.LPIPS(net='vgg')</c>, v0.1 heads over torchvision VGG16 features.</summary>
    Vgg,
}

/// <summary>
/// LPIPS distance per image between two batches in [-1, 1]. Frozen (no parameter requires grad), but differentiable
/// with respect to its inputs, so the trainer can use it as a loss (<c>Lpips(x, rec).mean()</c> is the reference loss
/// for equally sized images).
/// </summary>
/// <remarks>
/// Load on the CPU, then <c>.to(device)</c>: the scaling constants are non-persistent buffers that TorchSharp's
/// <c>.to()</c> moves but re-registers as persistent, so loading a weight file after moving would ask the file for them.
/// </remarks>
public sealed class Lpips : nn.Module<Tensor, Tensor, Tensor>
{
    // Both references hold these constants in float32 (torch.tensor([-.030, -.088, -.188]) and [.458, .448, .450]).
    private static readonly float[] Shift = [-.030f, -.088f, -.188f];
    private static readonly float[] Scale = [.458f, .448f, .450f];

    private readonly LpipsBackbone net;
    private readonly ModuleList<LpipsHead> lins;
    // The buffers' names: shift (1, 3, 1, 1) and scaleFactor (1, 3, 1, 1), 1/scale (training: multiplied) or scale (pip:
    // divided by). TorchSharp 0.107's .to(device) skips non-persistent buffers (named_buffers leaves them out), so they
    // stay on the CPU and follow the input at each call (three numbers each).
    private const string ShiftBuffer = "shift";
    private const string ScaleFactorBuffer = "scaleFactor";

    internal Lpips(LpipsVariant variant) : base(nameof(Lpips))
    {
        Variant = variant;
        var backbone = variant == LpipsVariant.Alex ? LpipsBackbone.AlexNet : LpipsBackbone.Vgg16;
        net = new LpipsBackbone(backbone);
        lins = new ModuleList<LpipsHead>(backbone.TapChannels.Select(channels => new LpipsHead(channels)).ToArray());
        // The training reference multiplies by `1. / torch.tensor([...])`, a float32 division done once; the pip
        // package divides by the tensor on every call. The roundings differ, so each keeps its own.
        float[] factor = variant == LpipsVariant.TrainingVgg ? Scale.Select(s => 1f / s).ToArray() : Scale;
        register_buffer(ShiftBuffer, tensor(Shift).view(1, 3, 1, 1), persistent: false);
        register_buffer(ScaleFactorBuffer, tensor(factor).view(1, 3, 1, 1), persistent: false);
        RegisterComponents();
        foreach (var parameter in parameters())
        {
            parameter.requires_grad = false;
        }
        eval();
    }

    /// <summary>Which LPIPS this is.</summary>
    public LpipsVariant Variant { get; }

    /// <summary>
    /// WinTok's training LPIPS from <c>lpips_with_vgg.pth</c> (keys <c>net.sliceS.J.*</c>, <c>lins.K.model.1.weight</c>),
    /// loaded strictly on the CPU.
    /// </summary>
    /// <exception cref="WeightFileMismatchException">The file's tensors are not exactly those of the training LPIPS.</exception>
    public static Lpips LoadTraining(string path) =>
        Build(LpipsVariant.TrainingVgg, module => WeightFile.Load(module, path, TrainingLayout));

    /// <summary>
    /// A pip-package LPIPS (<see cref="LpipsVariant.Alex"/> or <see cref="LpipsVariant.Vgg"/>) from the torchvision
    /// backbone file (<c>alexnet-owt-7be5be79.pth</c> / <c>vgg16-397923af.pth</c>; its classifier is ignored) and the
    /// lpips v0.1 head file (<c>alex.pth</c> / <c>vgg.pth</c>), loaded strictly on the CPU.
    /// </summary>
    /// <exception cref="WeightFileMismatchException">A file's tensors are not those the network needs.</exception>
    public static Lpips LoadPackage(LpipsVariant variant, string backbonePath, string headsPath)
    {
        RequirePackageVariant(variant);
        return Build(variant, module =>
        {
            WeightFile.Load(module, backbonePath, BackboneLayout(variant));
            WeightFile.Load(module, headsPath, HeadsLayout(variant));
        });
    }

    /// <summary>The training LPIPS from tensors already in memory (keys as in <c>lpips_with_vgg.pth</c>).</summary>
    internal static Lpips FromTensors(IReadOnlyDictionary<string, Tensor> weights, string source) =>
        Build(LpipsVariant.TrainingVgg, module => WeightFile.Load(module, weights, source, TrainingLayout));

    /// <summary>A pip-package LPIPS from tensors in memory, keyed as in the torchvision and lpips head files.</summary>
    internal static Lpips FromTensors(LpipsVariant variant, IReadOnlyDictionary<string, Tensor> backbone, IReadOnlyDictionary<string, Tensor> heads, string source)
    {
        RequirePackageVariant(variant);
        return Build(variant, module =>
        {
            WeightFile.Load(module, backbone, source, BackboneLayout(variant));
            WeightFile.Load(module, heads, source, HeadsLayout(variant));
        });
    }

    /// <summary>LPIPS(x, y) per image: (B, 3, H, W) twice, in [-1, 1] -> (B).</summary>
    public override Tensor forward(Tensor x, Tensor y)
    {
        if (!x.shape.SequenceEqual(y.shape) || x.dim() != 4 || x.shape[1] != 3)
        {
            throw new ArgumentException($"LPIPS compares two (B, 3, H, W) batches of one shape, got [{string.Join(", ", x.shape)}] and [{string.Join(", ", y.shape)}]");
        }
        using var scope = NewDisposeScope();
        long batch = x.shape[0];
        // One backbone pass over both batches; per-image results depend on the batching only through convolution round-off.
        var shift = get_buffer(ShiftBuffer)!.to(x.device);
        var scaleFactor = get_buffer(ScaleFactorBuffer)!.to(x.device);
        var both = cat([x, y]).sub(shift);                                   // (2B, 3, H, W)
        both = Variant == LpipsVariant.TrainingVgg ? both.mul(scaleFactor) : both.div(scaleFactor);
        var taps = net.call(both);
        Tensor? distance = null;
        for (int k = 0; k < taps.Length; k++)
        {
            var difference = (Normalize(taps[k].narrow(0, 0, batch)) - Normalize(taps[k].narrow(0, batch, batch))).square();
            var layer = lins[k].call(difference).mean([1, 2, 3]);            // (B): spatial mean of (B, 1, h, w)
            distance = distance is null ? layer : distance + layer;          // summed in tap order, as both references
        }
        return distance!.MoveToOuterDisposeScope();
    }

    private Tensor Normalize(Tensor features) // (B, C, h, w): unit length over channels
    {
        var squares = features.square().sum(1, keepdim: true);
        // Training: sqrt(sum + 1e-9) + 1e-10 (models/modules/lpips.py normalize_tensor); pip: sqrt(sum) + 1e-10.
        var norm = Variant == LpipsVariant.TrainingVgg ? squares.add(1e-9).sqrt() : squares.sqrt();
        return features / norm.add(1e-10);
    }

    private static Lpips Build(LpipsVariant variant, Action<Lpips> load)
    {
        var module = new Lpips(variant);
        try
        {
            load(module);
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static void RequirePackageVariant(LpipsVariant variant)
    {
        if (variant is not (LpipsVariant.Alex or LpipsVariant.Vgg))
        {
            throw new ArgumentException($"The pip lpips package networks are Alex and Vgg; {variant} loads with {nameof(LoadTraining)}", nameof(variant));
        }
    }

    // lpips_with_vgg.pth holds exactly the module's keys.
    private static readonly WeightFileLayout TrainingLayout = new("the WinTok training LPIPS-VGG (lpips_with_vgg.pth)", key => key, _ => false);

    // torchvision features.N.* -> net.sliceS.J.* with N = first index of slice S + J; the classifier is not used.
    private static WeightFileLayout BackboneLayout(LpipsVariant variant)
    {
        var spec = variant == LpipsVariant.Alex ? LpipsBackbone.AlexNet : LpipsBackbone.Vgg16;
        string name = variant == LpipsVariant.Alex ? "a torchvision AlexNet (alexnet-owt-7be5be79.pth)" : "a torchvision VGG16 (vgg16-397923af.pth)";
        return new WeightFileLayout(name,
            key => key.StartsWith("net.", StringComparison.Ordinal) ? spec.TorchvisionKey(key["net.".Length..]) : null,
            key => key.StartsWith("classifier.", StringComparison.Ordinal));
    }

    // lpips v0.1 heads: linK.model.1.weight -> lins.K.model.1.weight.
    private static WeightFileLayout HeadsLayout(LpipsVariant variant) => new(
        $"the lpips v0.1 {(variant == LpipsVariant.Alex ? "alex" : "vgg")}.pth linear heads",
        key => key.StartsWith("lins.", StringComparison.Ordinal) && key.Split('.') is [_, var k, .. var rest] ? $"lin{k}.{string.Join('.', rest)}" : null,
        _ => false);
}

/// <summary>One LPIPS linear head (<c>NetLinLayer</c>): <c>model</c> = [Identity (dropout in eval), 1x1 conv to 1, no bias].</summary>
internal sealed class LpipsHead : nn.Module<Tensor, Tensor>
{
    private readonly Sequential model;

    public LpipsHead(long channels) : base(nameof(LpipsHead))
    {
        model = nn.Sequential(("0", nn.Identity()), ("1", nn.Conv2d(channels, 1, 1, bias: false)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor difference) => model.call(difference); // (B, C, h, w) -> (B, 1, h, w)
}

/// <summary>
/// A torchvision feature extractor cut into five slices whose outputs are LPIPS's taps (relu1..relu5 of AlexNet,
/// relu1_2..relu5_3 of VGG16). Children are numbered from 0 within each slice, as in WinTok's training LPIPS.
/// </summary>
internal sealed class LpipsBackbone : nn.Module<Tensor, Tensor[]>
{
    private readonly Sequential slice1;
    private readonly Sequential slice2;
    private readonly Sequential slice3;
    private readonly Sequential slice4;
    private readonly Sequential slice5;

    public LpipsBackbone(BackboneSpec spec) : base(nameof(LpipsBackbone))
    {
        var slices = spec.SliceStarts.Zip(spec.SliceStarts.Skip(1).Append(spec.Layers.Count))
            .Select(bounds => nn.Sequential(Enumerable.Range(bounds.First, bounds.Second - bounds.First)
                .Select(i => ((i - bounds.First).ToString(System.Globalization.CultureInfo.InvariantCulture), spec.Layers[i].Build()))))
            .ToArray();
        (slice1, slice2, slice3, slice4, slice5) = (slices[0], slices[1], slices[2], slices[3], slices[4]);
        RegisterComponents();
    }

    public override Tensor[] forward(Tensor x) // (N, 3, H, W) -> five (N, C_k, h_k, w_k)
    {
        var h1 = slice1.call(x);
        var h2 = slice2.call(h1);
        var h3 = slice3.call(h2);
        var h4 = slice4.call(h3);
        var h5 = slice5.call(h4);
        return [h1, h2, h3, h4, h5];
    }

    /// <summary>torchvision <c>alexnet().features[:12]</c>; LPIPS taps after features 1, 4, 7, 9, 11.</summary>
    public static BackboneSpec AlexNet { get; } = new(
    [
        new Conv(3, 64, 11, 4, 2), new Relu(), new MaxPool(3, 2),
        new Conv(64, 192, 5, 1, 2), new Relu(), new MaxPool(3, 2),
        new Conv(192, 384, 3, 1, 1), new Relu(),
        new Conv(384, 256, 3, 1, 1), new Relu(),
        new Conv(256, 256, 3, 1, 1), new Relu(),
    ], [0, 2, 5, 8, 10], [64, 192, 384, 256, 256]);

    /// <summary>torchvision <c>vgg16().features[:30]</c>; LPIPS taps after features 3, 8, 15, 22, 29.</summary>
    public static BackboneSpec Vgg16 { get; } = new(
    [
        new Conv(3, 64, 3, 1, 1), new Relu(), new Conv(64, 64, 3, 1, 1), new Relu(),
        new MaxPool(2, 2), new Conv(64, 128, 3, 1, 1), new Relu(), new Conv(128, 128, 3, 1, 1), new Relu(),
        new MaxPool(2, 2), new Conv(128, 256, 3, 1, 1), new Relu(), new Conv(256, 256, 3, 1, 1), new Relu(), new Conv(256, 256, 3, 1, 1), new Relu(),
        new MaxPool(2, 2), new Conv(256, 512, 3, 1, 1), new Relu(), new Conv(512, 512, 3, 1, 1), new Relu(), new Conv(512, 512, 3, 1, 1), new Relu(),
        new MaxPool(2, 2), new Conv(512, 512, 3, 1, 1), new Relu(), new Conv(512, 512, 3, 1, 1), new Relu(), new Conv(512, 512, 3, 1, 1), new Relu(),
    ], [0, 4, 9, 16, 23], [64, 128, 256, 512, 512]);

    /// <summary>The layers of <c>features</c> in order, the index where each slice starts, and each tap's channels.</summary>
    internal sealed record BackboneSpec(IReadOnlyList<Layer> Layers, IReadOnlyList<int> SliceStarts, IReadOnlyList<long> TapChannels)
    {
        /// <summary><c>sliceS.J.param</c> -> torchvision's <c>features.N.param</c>, or null for a name outside the slices.</summary>
        public string? TorchvisionKey(string sliceKey)
        {
            if (sliceKey.Split('.') is not [var slice, var child, var parameter]
                || !slice.StartsWith("slice", StringComparison.Ordinal)
                || !int.TryParse(slice["slice".Length..], out int s) || s < 1 || s > SliceStarts.Count
                || !int.TryParse(child, out int j))
            {
                return null;
            }
            return $"features.{SliceStarts[s - 1] + j}.{parameter}";
        }
    }

    internal abstract record Layer
    {
        public abstract nn.Module<Tensor, Tensor> Build();
    }

    private sealed record Conv(long In, long Out, long Kernel, long Stride, long Padding) : Layer
    {
        public override nn.Module<Tensor, Tensor> Build() => nn.Conv2d(In, Out, Kernel, stride: Stride, padding: Padding);
    }

    private sealed record Relu : Layer
    {
        public override nn.Module<Tensor, Tensor> Build() => nn.ReLU();
    }

    private sealed record MaxPool(long Kernel, long Stride) : Layer
    {
        public override nn.Module<Tensor, Tensor> Build() => nn.MaxPool2d(Kernel, Stride);
    }
}
