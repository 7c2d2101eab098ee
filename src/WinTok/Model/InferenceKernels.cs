using TorchSharp;
using TorchSharp.Modules;
using WinTok.Cuda;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

/// <summary>
/// Which of our own CUDA paths bf16 inference may take instead of torch's ops. Each is checked against torch in
/// <c>wintok-bench layers</c> and falls back to torch for any input it does not support.
/// </summary>
/// <param name="CublasLt">Linear layers as one cuBLASLt call with bias, tanh-GELU and residual in the epilogue.</param>
/// <param name="LayerNorm">A one-pass bf16 LayerNorm kernel.</param>
/// <param name="CodeSearch">The quantizer's nearest-code search as one kernel.</param>
/// <param name="Convolutions">UniTok's convolution stages rewritten for speed: NHWC maps, 1x1 convolutions as GEMMs
/// (bias and shortcut in the epilogue), depthwise 3x3 + bias + GELU as one kernel, nearest x2 upsampling + 3x3
/// convolution as one sub-pixel convolution with 2x2 kernels (2.25x fewer FLOPs).</param>
public sealed record CudaFastPaths(bool CublasLt = true, bool LayerNorm = true, bool CodeSearch = true, bool Convolutions = true)
{
    public static CudaFastPaths All { get; } = new();
    public static CudaFastPaths None { get; } = new(false, false, false, false);
}

/// <summary>
/// The kernels a model's layers call at inference: torch's by default, our CUDA paths where a
/// <see cref="CudaFastPaths"/> allows them on the device the model serves on. Handed to the model by
/// <see cref="WinTokModel.PrepareForInference"/>; training always runs on torch's.
/// </summary>
public sealed class InferenceKernels
{
    private InferenceKernels(CublasLtLinear? linear, FusedLayerNorm? layerNorm, FusedCodeSearch? codeSearch,
        FusedDepthwiseConv? depthwise = null, bool rewriteConvolutions = false) =>
        (Linear, LayerNorm, CodeSearch, Depthwise, RewriteConvolutions) = (linear, layerNorm, codeSearch, depthwise, rewriteConvolutions);

    /// <summary>torch's ops everywhere.</summary>
    public static InferenceKernels Torch { get; } = new(null, null, null);

    /// <summary>
    /// torch's ops, with the convolution rewrites that need no kernel of ours (NHWC maps, 1x1 convolutions as GEMMs,
    /// sub-pixel upsampling convolutions): lets the CPU tests check those rewrites against the plain modules.
    /// </summary>
    internal static InferenceKernels TorchWithConvolutionRewrites { get; } = new(null, null, null, null, rewriteConvolutions: true);

    internal CublasLtLinear? Linear { get; }
    internal FusedLayerNorm? LayerNorm { get; }
    internal FusedCodeSearch? CodeSearch { get; }
    internal FusedDepthwiseConv? Depthwise { get; }

    /// <summary>Whether UniTok's convolution stages take the rewritten forms (<see cref="CudaFastPaths.Convolutions"/>).</summary>
    internal bool RewriteConvolutions { get; }

    /// <summary>
    /// The kernels for <paramref name="device"/>: our CUDA paths that <paramref name="paths"/> allows and that could be
    /// set up (driver, NVRTC, cuBLASLt found) on CUDA device 0, the one device a worker pod serves; torch's otherwise.
    /// </summary>
    public static InferenceKernels For(Device device, CudaFastPaths paths)
    {
        if (device.type != DeviceType.CUDA || device.index > 0) return Torch;
        return new InferenceKernels(
            paths.CublasLt ? CublasLtLinear.Shared : null,
            paths.LayerNorm ? FusedLayerNorm.Shared : null,
            paths.CodeSearch ? FusedCodeSearch.Shared : null,
            paths.Convolutions ? FusedDepthwiseConv.Shared : null,
            paths.Convolutions);
    }

    /// <summary>One line per path: in use, off, or unavailable and why (for logs and benchmark reports).</summary>
    public IEnumerable<string> Describe()
    {
        yield return $"cublaslt_linear {(Linear is null ? "off or unavailable" : "in use")}";
        yield return $"fused_layer_norm {(LayerNorm is null ? "off or unavailable" + (FusedLayerNorm.UnavailableReason is { } a ? ": " + a : "") : "in use")}";
        yield return $"fused_code_search {(CodeSearch is null ? "off or unavailable" + (FusedCodeSearch.UnavailableReason is { } b ? ": " + b : "") : "in use")}";
        yield return $"convolution_rewrites {(RewriteConvolutions ? "in use" : "off")}";
        yield return $"fused_depthwise_conv {(Depthwise is null ? "off or unavailable" + (FusedDepthwiseConv.UnavailableReason is { } c ? ": " + c : "") : "in use")}";
        foreach (var plan in Linear?.DescribePlans() ?? []) yield return $"cublaslt_plan {plan}";
    }
}

/// <summary>
/// A module that prepares for inference: derives inference-only weights (fused or folded projections) and takes the
/// kernels to run with. Called by the model's <c>PrepareForInference</c>; <see cref="ResetForTraining"/> drops both.
/// </summary>
internal interface IInferenceModule
{
    void PrepareForInference(InferenceKernels kernels);

    void ResetForTraining();
}

/// <summary>
/// Linear layers as this model runs them. On torch's kernels: <c>addmm</c> on a 2-D view, which is what PyTorch's
/// <c>at::linear</c> does (TorchSharp's <c>functional.linear</c> is the C++ frontend's, which adds the bias in a separate
/// pass for 3-D inputs), then the optional tanh-GELU and residual add as separate ops. With cuBLASLt (bf16/fp16 CUDA
/// inference): one call with the bias, GELU and residual in its epilogue (<see cref="CublasLtLinear"/>).
/// </summary>
internal static class Dense
{
    public static Tensor Forward(Linear layer, Tensor x, InferenceKernels kernels, Tensor? residual = null, bool gelu = false) =>
        Forward(x, layer.weight!, layer.bias, kernels, residual, gelu);

    /// <summary><c>residual + act(x W^T + b)</c> for x (..., in), W (out, in), b (out); act is tanh-GELU or identity.</summary>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias, InferenceKernels kernels, Tensor? residual = null, bool gelu = false)
    {
        if (kernels.Linear is { } fused && fused.TryForward(x, weight, bias, residual, gelu, out var output))
            return output;
        using var scope = NewDisposeScope();
        (x, weight, bias) = (Autocast.Low(x)!, Autocast.Low(weight)!, Autocast.Low(bias));
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
/// LayerNorm as this model runs it: torch's module (in float32 inside an <see cref="Autocast"/> region, as autocast
/// runs it), or our one-pass bf16 kernel (<see cref="FusedLayerNorm"/>).
/// </summary>
internal static class Norm
{
    public static Tensor Forward(LayerNorm norm, Tensor x, InferenceKernels kernels)
    {
        if (kernels.LayerNorm is { } fused && fused.TryForward(x, norm.weight!, norm.bias!, norm.eps, out var y))
            return y;
        if (Autocast.LowPrecision is null)
            return norm.call(x);
        using var scope = NewDisposeScope();
        return norm.call(Autocast.Full(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Convolutions as this model runs them: the module itself, or inside an <see cref="Autocast"/> region the same
/// convolution on low-precision copies of input, weight and bias.
/// </summary>
internal static class Conv
{
    public static Tensor Forward(Conv2d conv, Tensor x)
    {
        if (Autocast.LowPrecision is null)
            return conv.call(x);
        using var scope = NewDisposeScope();
        if (conv.padding_mode != PaddingModes.Zeros || conv.padding is null)
            throw new NotSupportedException("Autocast convolutions support explicit zero padding only");
        return F.conv2d(Autocast.Low(x)!, Autocast.Low(conv.weight)!, Autocast.Low(conv.bias), conv.stride, conv.padding, conv.dilation, conv.groups)
            .MoveToOuterDisposeScope();
    }
}
