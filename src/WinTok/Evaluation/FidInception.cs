using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Evaluation;

// The FID Inception network: InceptionV3 (Szegedy et al., "Rethinking the Inception Architecture for Computer
// Vision", arXiv 1512.00567) with the TensorFlow FID graph's weights, as pytorch-fid ports it
// (mseitzer/pytorch-fid src/pytorch_fid/inception.py; WinTok's copy examples/eval_tokenizer/inception.py @ eb0452e,
// InceptionV3([3]) = 2048-d final average pool). Blocks are torchvision's (torchvision/models/inception.py:
// BasicConv2d, InceptionA..E) with pytorch-fid's patches: branch average pools exclude the zero padding
// (count_include_pad=False, as TensorFlow), and the last block (Mixed_7c) max-pools its pool branch.
// Weights: pt_inception-2015-12-05-6726825d.pth (torchvision Inception3 keys, num_classes 1008, no AuxLogits);
// its fc.* classifier is not used. Field names are those keys.

/// <summary>
/// pytorch-fid's InceptionV3 up to the final average pool: images in [-1, 1] → (B, 2048) FID features, computed as
/// WinTok's evaluation does: <c>(x + 1) / 2</c>, bilinear resize to 299×299 (align_corners false), <c>2x − 1</c>.
/// </summary>
public sealed class FidInception : nn.Module<Tensor, Tensor>
{
    /// <summary>Feature width of the final average pool.</summary>
    public const int FeatureDimension = 2048;

    private const int InputSize = 299;

    private readonly BasicConv2d Conv2d_1a_3x3;
    private readonly BasicConv2d Conv2d_2a_3x3;
    private readonly BasicConv2d Conv2d_2b_3x3;
    private readonly BasicConv2d Conv2d_3b_1x1;
    private readonly BasicConv2d Conv2d_4a_3x3;
    private readonly InceptionA Mixed_5b;
    private readonly InceptionA Mixed_5c;
    private readonly InceptionA Mixed_5d;
    private readonly InceptionB Mixed_6a;
    private readonly InceptionC Mixed_6b;
    private readonly InceptionC Mixed_6c;
    private readonly InceptionC Mixed_6d;
    private readonly InceptionC Mixed_6e;
    private readonly InceptionD Mixed_7a;
    private readonly InceptionE Mixed_7b;
    private readonly InceptionE Mixed_7c;

    internal FidInception() : base(nameof(FidInception))
    {
        Conv2d_1a_3x3 = new BasicConv2d(3, 32, 3, stride: 2);
        Conv2d_2a_3x3 = new BasicConv2d(32, 32, 3);
        Conv2d_2b_3x3 = new BasicConv2d(32, 64, 3, padding: 1);
        Conv2d_3b_1x1 = new BasicConv2d(64, 80, 1);
        Conv2d_4a_3x3 = new BasicConv2d(80, 192, 3);
        Mixed_5b = new InceptionA(192, poolFeatures: 32);
        Mixed_5c = new InceptionA(256, poolFeatures: 64);
        Mixed_5d = new InceptionA(288, poolFeatures: 64);
        Mixed_6a = new InceptionB(288);
        Mixed_6b = new InceptionC(768, channels7x7: 128);
        Mixed_6c = new InceptionC(768, channels7x7: 160);
        Mixed_6d = new InceptionC(768, channels7x7: 160);
        Mixed_6e = new InceptionC(768, channels7x7: 192);
        Mixed_7a = new InceptionD(768);
        Mixed_7b = new InceptionE(1280, maxPoolBranch: false);
        Mixed_7c = new InceptionE(2048, maxPoolBranch: true);
        RegisterComponents();
        foreach (var parameter in parameters())
        {
            parameter.requires_grad = false;
        }
        eval();
    }

    /// <summary>Loads <c>pt_inception-2015-12-05-6726825d.pth</c> (or the same tensors as safetensors) strictly, on the CPU.</summary>
    /// <exception cref="WeightFileMismatchException">The file's tensors are not those of the FID Inception.</exception>
    public static FidInception Load(string path) => Build(module => WeightFile.Load(module, path, Layout));

    /// <summary>The network from tensors in memory, keyed as in the FID weights file.</summary>
    internal static FidInception FromTensors(IReadOnlyDictionary<string, Tensor> weights, string source) =>
        Build(module => WeightFile.Load(module, weights, source, Layout));

    /// <summary>FID features: (B, 3, H, W) in [-1, 1] → (B, 2048), float32.</summary>
    public override Tensor forward(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
        {
            throw new ArgumentException($"FID Inception takes (B, 3, H, W) images, got [{string.Join(", ", images.shape)}]", nameof(images));
        }
        using var scope = NewDisposeScope();
        // The evaluation passes (x + 1) / 2 to pytorch-fid, which resizes and then maps [0, 1] back with 2x - 1.
        var x = images.add(1).div(2);
        x = F.interpolate(x, size: [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        x = x.mul(2).sub(1);                                                    // (B, 3, 299, 299)
        x = Conv2d_2b_3x3.call(Conv2d_2a_3x3.call(Conv2d_1a_3x3.call(x)));     // (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride: 2);                                      // (B, 64, 73, 73)
        x = Conv2d_4a_3x3.call(Conv2d_3b_1x1.call(x));                          // (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride: 2);                                      // (B, 192, 35, 35)
        x = Mixed_5d.call(Mixed_5c.call(Mixed_5b.call(x)));                     // (B, 288, 35, 35)
        x = Mixed_6a.call(x);                                                   // (B, 768, 17, 17)
        x = Mixed_6e.call(Mixed_6d.call(Mixed_6c.call(Mixed_6b.call(x))));      // (B, 768, 17, 17)
        x = Mixed_7c.call(Mixed_7b.call(Mixed_7a.call(x)));                     // (B, 2048, 8, 8)
        return F.adaptive_avg_pool2d(x, [1, 1]).flatten(1).MoveToOuterDisposeScope(); // (B, 2048)
    }

    private static FidInception Build(Action<FidInception> load)
    {
        var module = new FidInception();
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

    // The file's keys are the module's; its 1008-way classifier (fc.weight, fc.bias) is not used.
    private static readonly WeightFileLayout Layout = new(
        "the FID Inception (pt_inception-2015-12-05-6726825d.pth)",
        key => key,
        key => key.StartsWith("fc.", StringComparison.Ordinal));
}

/// <summary>torchvision <c>BasicConv2d</c>: conv (no bias) → BatchNorm (eps 0.001, running statistics) → ReLU.</summary>
internal sealed class BasicConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    public BasicConv2d(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0)
        : this(inChannels, outChannels, (kernel, kernel), (stride, stride), (padding, padding))
    {
    }

    public BasicConv2d(long inChannels, long outChannels, (long, long) kernel, (long, long) stride, (long, long) padding)
        : base(nameof(BasicConv2d))
    {
        conv = nn.Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding, bias: false);
        bn = nn.BatchNorm2d(outChannels, eps: 0.001);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return F.relu(bn.call(conv.call(x))).MoveToOuterDisposeScope();
    }

    /// <summary>A 1×n (<paramref name="wide"/>) or n×1 convolution padded to keep the size, as Inception's factorised 7×7 and 3×3.</summary>
    public static BasicConv2d Factorized(long inChannels, long outChannels, long n, bool wide) => wide
        ? new BasicConv2d(inChannels, outChannels, (1, n), (1, 1), (0, n / 2))
        : new BasicConv2d(inChannels, outChannels, (n, 1), (1, 1), (n / 2, 0));
}

/// <summary>The pool branch of the FID blocks: a 3×3 average that ignores the zero padding (TensorFlow's), stride 1.</summary>
internal static class FidPooling
{
    public static Tensor AverageWithoutPadding(Tensor x) => F.avg_pool2d(x, 3, stride: 1, padding: 1, count_include_pad: false);
}

/// <summary>pytorch-fid <c>FIDInceptionA</c> (35×35 grid): 1×1, 5×5, double 3×3 and pool branches.</summary>
internal sealed class InceptionA : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch5x5_1;
    private readonly BasicConv2d branch5x5_2;
    private readonly BasicConv2d branch3x3dbl_1;
    private readonly BasicConv2d branch3x3dbl_2;
    private readonly BasicConv2d branch3x3dbl_3;
    private readonly BasicConv2d branch_pool;

    public InceptionA(long inChannels, long poolFeatures) : base(nameof(InceptionA))
    {
        branch1x1 = new BasicConv2d(inChannels, 64, 1);
        branch5x5_1 = new BasicConv2d(inChannels, 48, 1);
        branch5x5_2 = new BasicConv2d(48, 64, 5, padding: 2);
        branch3x3dbl_1 = new BasicConv2d(inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d(96, 96, 3, padding: 1);
        branch_pool = new BasicConv2d(inChannels, poolFeatures, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat(
        [
            branch1x1.call(x),
            branch5x5_2.call(branch5x5_1.call(x)),
            branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x))),
            branch_pool.call(FidPooling.AverageWithoutPadding(x)),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision <c>InceptionB</c> (35×35 → 17×17): strided 3×3, strided double 3×3 and max-pool branches.</summary>
internal sealed class InceptionB : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch3x3;
    private readonly BasicConv2d branch3x3dbl_1;
    private readonly BasicConv2d branch3x3dbl_2;
    private readonly BasicConv2d branch3x3dbl_3;

    public InceptionB(long inChannels) : base(nameof(InceptionB))
    {
        branch3x3 = new BasicConv2d(inChannels, 384, 3, stride: 2);
        branch3x3dbl_1 = new BasicConv2d(inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d(96, 96, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat(
        [
            branch3x3.call(x),
            branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x))),
            F.max_pool2d(x, 3, stride: 2),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>pytorch-fid <c>FIDInceptionC</c> (17×17 grid): 1×1, factorised 7×7, double factorised 7×7 and pool branches.</summary>
internal sealed class InceptionC : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch7x7_1;
    private readonly BasicConv2d branch7x7_2;
    private readonly BasicConv2d branch7x7_3;
    private readonly BasicConv2d branch7x7dbl_1;
    private readonly BasicConv2d branch7x7dbl_2;
    private readonly BasicConv2d branch7x7dbl_3;
    private readonly BasicConv2d branch7x7dbl_4;
    private readonly BasicConv2d branch7x7dbl_5;
    private readonly BasicConv2d branch_pool;

    public InceptionC(long inChannels, long channels7x7) : base(nameof(InceptionC))
    {
        long c7 = channels7x7;
        branch1x1 = new BasicConv2d(inChannels, 192, 1);
        branch7x7_1 = new BasicConv2d(inChannels, c7, 1);
        branch7x7_2 = BasicConv2d.Factorized(c7, c7, 7, wide: true);
        branch7x7_3 = BasicConv2d.Factorized(c7, 192, 7, wide: false);
        branch7x7dbl_1 = new BasicConv2d(inChannels, c7, 1);
        branch7x7dbl_2 = BasicConv2d.Factorized(c7, c7, 7, wide: false);
        branch7x7dbl_3 = BasicConv2d.Factorized(c7, c7, 7, wide: true);
        branch7x7dbl_4 = BasicConv2d.Factorized(c7, c7, 7, wide: false);
        branch7x7dbl_5 = BasicConv2d.Factorized(c7, 192, 7, wide: true);
        branch_pool = new BasicConv2d(inChannels, 192, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat(
        [
            branch1x1.call(x),
            branch7x7_3.call(branch7x7_2.call(branch7x7_1.call(x))),
            branch7x7dbl_5.call(branch7x7dbl_4.call(branch7x7dbl_3.call(branch7x7dbl_2.call(branch7x7dbl_1.call(x))))),
            branch_pool.call(FidPooling.AverageWithoutPadding(x)),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision <c>InceptionD</c> (17×17 → 8×8): strided 3×3, factorised 7×7 then strided 3×3, and max-pool branches.</summary>
internal sealed class InceptionD : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch3x3_1;
    private readonly BasicConv2d branch3x3_2;
    private readonly BasicConv2d branch7x7x3_1;
    private readonly BasicConv2d branch7x7x3_2;
    private readonly BasicConv2d branch7x7x3_3;
    private readonly BasicConv2d branch7x7x3_4;

    public InceptionD(long inChannels) : base(nameof(InceptionD))
    {
        branch3x3_1 = new BasicConv2d(inChannels, 192, 1);
        branch3x3_2 = new BasicConv2d(192, 320, 3, stride: 2);
        branch7x7x3_1 = new BasicConv2d(inChannels, 192, 1);
        branch7x7x3_2 = BasicConv2d.Factorized(192, 192, 7, wide: true);
        branch7x7x3_3 = BasicConv2d.Factorized(192, 192, 7, wide: false);
        branch7x7x3_4 = new BasicConv2d(192, 192, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat(
        [
            branch3x3_2.call(branch3x3_1.call(x)),
            branch7x7x3_4.call(branch7x7x3_3.call(branch7x7x3_2.call(branch7x7x3_1.call(x)))),
            F.max_pool2d(x, 3, stride: 2),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// pytorch-fid <c>FIDInceptionE_1</c> / <c>FIDInceptionE_2</c> (8×8 grid): 1×1, split 3×3, double split 3×3 and pool
/// branches; the pool is an average without padding in Mixed_7b and a 3×3 max pool in Mixed_7c (pytorch-fid notes the
/// TensorFlow graph does so, likely by mistake).
/// </summary>
internal sealed class InceptionE : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1;
    private readonly BasicConv2d branch3x3_1;
    private readonly BasicConv2d branch3x3_2a;
    private readonly BasicConv2d branch3x3_2b;
    private readonly BasicConv2d branch3x3dbl_1;
    private readonly BasicConv2d branch3x3dbl_2;
    private readonly BasicConv2d branch3x3dbl_3a;
    private readonly BasicConv2d branch3x3dbl_3b;
    private readonly BasicConv2d branch_pool;
    private readonly bool maxPoolBranch;

    public InceptionE(long inChannels, bool maxPoolBranch) : base(nameof(InceptionE))
    {
        this.maxPoolBranch = maxPoolBranch;
        branch1x1 = new BasicConv2d(inChannels, 320, 1);
        branch3x3_1 = new BasicConv2d(inChannels, 384, 1);
        branch3x3_2a = BasicConv2d.Factorized(384, 384, 3, wide: true);
        branch3x3_2b = BasicConv2d.Factorized(384, 384, 3, wide: false);
        branch3x3dbl_1 = new BasicConv2d(inChannels, 448, 1);
        branch3x3dbl_2 = new BasicConv2d(448, 384, 3, padding: 1);
        branch3x3dbl_3a = BasicConv2d.Factorized(384, 384, 3, wide: true);
        branch3x3dbl_3b = BasicConv2d.Factorized(384, 384, 3, wide: false);
        branch_pool = new BasicConv2d(inChannels, 192, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var split = branch3x3_1.call(x);
        var doubled = branch3x3dbl_2.call(branch3x3dbl_1.call(x));
        var pooled = maxPoolBranch ? F.max_pool2d(x, 3, stride: 1, padding: 1) : FidPooling.AverageWithoutPadding(x);
        return cat(
        [
            branch1x1.call(x),
            branch3x3_2a.call(split), branch3x3_2b.call(split),
            branch3x3dbl_3a.call(doubled), branch3x3dbl_3b.call(doubled),
            branch_pool.call(pooled),
        ], 1).MoveToOuterDisposeScope();
    }
}
