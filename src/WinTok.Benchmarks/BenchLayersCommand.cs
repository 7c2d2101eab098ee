using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using WinTok.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench layers`: milliseconds per call of each building block of the so400m encoder at serving shapes, to see
/// where tokenize time goes (no profiler binding exists in TorchSharp).
/// </summary>
internal static class BenchLayersCommand
{
    public static Command Create()
    {
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 128 };
        var semanticTokens = new Option<int>("--semantic-tokens") { DefaultValueFactory = _ => 32 };
        var command = new Command("layers", "Per-block timings of the encoder at serving shapes (CUDA).") { batch, semanticTokens };
        command.SetAction(parse => Run(parse.GetValue(batch), parse.GetValue(semanticTokens)));
        return command;
    }

    private static int Run(int batch, int semanticTokens)
    {
        var device = cuda.is_available() ? CUDA : CPU;
        var shape = EncoderShape.So400m16x256;
        var (d, inner, heads) = (shape.HiddenSize, shape.IntermediateSize, shape.Heads);
        var t = shape.NumPatches + semanticTokens;
        using var inference = inference_mode();
        using var x = randn([batch, t, d], device: device, dtype: bfloat16);
        using var wide = randn([batch, t, inner], device: device, dtype: bfloat16);

        Linear Make(int i, int o) { var l = nn.Linear(i, o); l.to(device); l.to(bfloat16); return l; }
        using var qkv = Make(d, 3 * d);
        using var square = Make(d, d);
        using var up = Make(d, inner);
        using var down = Make(inner, d);
        using var norm = nn.LayerNorm(d, 1e-6); norm.to(device); norm.to(bfloat16);
        Print("linear D->3D", Time(device, () => qkv.call(x).Dispose()));
        Print("linear D->D", Time(device, () => square.call(x).Dispose()));
        Print("linear D->I", Time(device, () => up.call(x).Dispose()));
        Print("linear I->D", Time(device, () => down.call(wide).Dispose()));
        CompareDense("D->3D", device, qkv, x, residual: null, gelu: false);
        CompareDense("D->D + residual", device, square, x, residual: x, gelu: false);
        CompareDense("D->I + gelu", device, up, x, residual: null, gelu: true);
        CompareDense("I->D + residual", device, down, wide, residual: x, gelu: false);
        CheckGeluFlavour(device, up, x);
        using var weight = up.weight!.detach().clone();
        using var x2d = x.view(-1, d);
        Print("matmul D->I, no bias (3-D input)", Time(device, () => x.matmul(weight.t()).Dispose()));
        Print("mm D->I, no bias (2-D input)", Time(device, () => x2d.mm(weight.t()).Dispose()));
        using var big = randn([8192, 8192], device: device, dtype: bfloat16);
        Print("mm 8192^3 (1.1 TFLOP)", Time(device, () => big.mm(big).Dispose()));
        Print("layer_norm", Time(device, () => norm.call(x).Dispose()));
        CompareNorm(device, norm, x);
        Print("gelu_tanh (B,T,I)", Time(device, () => F.gelu(wide, GELU.Approximate.tanh).Dispose()));
        Print("add (B,T,D)", Time(device, () => (x + x).Dispose()));

        using var q = randn([batch, heads, t, d / heads], device: device, dtype: bfloat16);
        Print("sdpa (math allowed)", Time(device, () => F.scaled_dot_product_attention(q, q, q).Dispose()));
        var math = backends.cuda.math_sdp_enabled();
        backends.cuda.enable_math_sdp(false);
        try
        {
            Print("sdpa (fused only)", Time(device, () => F.scaled_dot_product_attention(q, q, q).Dispose()));
        }
        catch (Exception e)
        {
            Console.WriteLine($"LAYER sdpa (fused only) unavailable: {e.Message.Split('\n')[0]}");
        }
        backends.cuda.enable_math_sdp(math);
        Console.WriteLine($"LAYER flash_sdp_enabled={backends.cuda.flash_sdp_enabled()} math_sdp_enabled={backends.cuda.math_sdp_enabled()}");

        var fast = InferenceKernels.For(device, CudaFastPaths.All);
        var noLayerNorm = InferenceKernels.For(device, CudaFastPaths.All with { LayerNorm = false });
        var torchOnly = InferenceKernels.Torch;
        using var layer = new SiglipEncoderLayer(d, heads, inner, 1e-6);
        layer.to(device); layer.to(bfloat16);
        Print("encoder layer, separate q/k/v, torch kernels", Time(device, () => layer.call(x).Dispose()));
        Prepare(layer, fast);
        Print("encoder layer, fused q/k/v", Time(device, () => layer.call(x).Dispose()));
        Prepare(layer, noLayerNorm);
        Print("encoder layer, fused q/k/v, torch LayerNorm", Time(device, () => layer.call(x).Dispose()));
        Prepare(layer, torchOnly);
        Print("encoder layer, fused q/k/v, torch LayerNorm and addmm (no cuBLASLt epilogues)", Time(device, () => layer.call(x).Dispose()));

        using var projection = new AttnProjection(d, 32, 4);
        projection.to(device);
        using var pixels = randn([batch, shape.NumPatches, d], device: device);
        Print("quant_proj fp32", Time(device, () => projection.call(pixels).Dispose()));
        backends.cuda.matmul.allow_tf32 = true;
        Print("quant_proj tf32", Time(device, () => projection.call(pixels).Dispose()));
        backends.cuda.matmul.allow_tf32 = false;
        Prepare(projection, fast);
        Print("quant_proj fp32, value path folded", Time(device, () => projection.call(pixels).Dispose()));
        using var quantizer = new VectorQuantizerM(WinTokConfig.Default.Quantizer);
        quantizer.to(device);
        using var features = randn([batch, shape.NumPatches, 32], device: device);
        Print("quantizer f_to_idx, torch matmul + argmax", Time(device, () => quantizer.FeaturesToIndices(features).Dispose()));
        using (var expected = quantizer.FeaturesToIndices(features))
        {
            Prepare(quantizer, fast);
            Print("quantizer f_to_idx", Time(device, () => quantizer.FeaturesToIndices(features).Dispose()));
            using var actual = quantizer.FeaturesToIndices(features);
            var why = fast.CodeSearch is null ? " (kernel off or unavailable)" : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"CHECK code search kernel vs torch: {actual.ne(expected).sum().item<long>()} of {expected.numel()} ids differ{why}"));
        }
        TimeModel(device, batch, semanticTokens, fast);
        foreach (var line in fast.Describe()) Console.WriteLine($"LTPLAN {line}");
        return 0;
    }

    /// <summary>Hands <paramref name="kernels"/> to every layer of <paramref name="module"/>, as the model's PrepareForInference does.</summary>
    private static void Prepare(nn.Module module, InferenceKernels kernels)
    {
        foreach (var part in module.modules().Prepend(module).OfType<IInferenceModule>().Distinct()) part.PrepareForInference(kernels);
    }

    /// <summary>The whole bf16 serving model, tokenize and round trip, with and without our kernels.</summary>
    private static void TimeModel(Device device, int batch, int semanticTokens, InferenceKernels fast)
    {
        using var model = new WinTokModel(WinTokConfig.ForPreset(EncoderShape.So400m16x256, semanticTokens));
        model.to(device);
        var dtype = device.type == DeviceType.CUDA ? bfloat16 : float32;
        var size = model.Config.Encoder.ImageSize;
        using var images = rand([batch, 3, size, size], device: device) * 2 - 1;
        model.PrepareForInference(dtype, InferenceKernels.Torch);
        Print("model: image_to_indices, torch kernels", Time(device, () => model.ImageToIndices(images).Dispose(), iters: 5));
        model.PrepareForInference(dtype, fast);
        Print("model: image_to_indices", Time(device, () => model.ImageToIndices(images).Dispose(), iters: 5));
        Print("model: image_to_indices + indices_to_image", Time(device, () =>
        {
            using var scope = NewDisposeScope();
            model.IndicesToImage(model.ImageToIndices(images));
        }, iters: 3));
    }

    /// <summary>Times one linear layer through cuBLASLt with its epilogue and through torch, and compares the outputs.</summary>
    private static void CompareDense(string name, Device device, Linear layer, Tensor x, Tensor? residual, bool gelu)
    {
        var (torchOnly, fast) = (InferenceKernels.Torch, InferenceKernels.For(device, CudaFastPaths.All));
        using var expected = Dense.Forward(layer, x, torchOnly, residual, gelu);
        Print($"dense {name}, torch addmm + separate ops", Time(device, () => Dense.Forward(layer, x, torchOnly, residual, gelu).Dispose()));
        using var actual = Dense.Forward(layer, x, fast, residual, gelu);
        Print($"dense {name}, cuBLASLt epilogue", Time(device, () => Dense.Forward(layer, x, fast, residual, gelu).Dispose()));
        using var difference = (actual.to(float32) - expected.to(float32)).abs();
        using var scale = expected.to(float32).abs().max();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"CHECK dense {name}: max |cuBLASLt - torch| = {difference.max().item<float>():G4} (max |y| = {scale.item<float>():G4}), " +
            $"mean = {difference.mean().item<float>():G4}"));
    }

    /// <summary>Our bf16 LayerNorm kernel against torch's: time and largest difference.</summary>
    private static void CompareNorm(Device device, LayerNorm norm, Tensor x)
    {
        if (device.type != DeviceType.CUDA) return;
        var fast = InferenceKernels.For(device, CudaFastPaths.All);
        if (fast.LayerNorm is null)
        {
            Console.WriteLine($"CHECK fused layer_norm unavailable: {string.Join("; ", fast.Describe())}");
            return;
        }
        Print("layer_norm, WinTok kernel", Time(device, () => Norm.Forward(norm, x, fast).Dispose()));
        using var scope = NewDisposeScope();
        var expected = norm.call(x).to(float32);
        var actual = Norm.Forward(norm, x, fast).to(float32);
        var difference = (actual - expected).abs();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"CHECK layer_norm kernel vs torch: max |diff| = {difference.max().item<float>():G4}, elements differing = {(difference > 0).to(float32).mean().item<float>() * 100:F4}%"));
    }

    /// <summary>cuBLASLt's GELU epilogue must be the tanh approximation SigLIP uses, not the erf form.</summary>
    private static void CheckGeluFlavour(Device device, Linear layer, Tensor x)
    {
        if (device.type != DeviceType.CUDA) return;
        using var scope = NewDisposeScope();
        var pre = Dense.Forward(layer, x, InferenceKernels.Torch).to(float32);
        var fused = Dense.Forward(layer, x, InferenceKernels.For(device, CudaFastPaths.All), gelu: true).to(float32);
        var region = (pre > -4.0).logical_and(pre < -1.5); // where the two GELU forms differ most, relative to the value
        var tanhError = (fused - F.gelu(pre, GELU.Approximate.tanh)).abs().masked_select(region).mean().item<float>();
        var erfError = (fused - F.gelu(pre)).abs().masked_select(region).mean().item<float>();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"CHECK gelu epilogue on pre-activations in (-4, -1.5): mean |fused - gelu_tanh| = {tanhError:G4}, mean |fused - gelu_erf| = {erfError:G4}"));
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }

    private static double Time(Device device, Action step, int iters = 20)
    {
        step();
        if (device.type == DeviceType.CUDA) cuda.synchronize();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < iters; i++) step();
        if (device.type == DeviceType.CUDA) cuda.synchronize();
        return clock.Elapsed.TotalMilliseconds / iters;
    }

    private static void Print(string name, double ms) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"LAYER {name}: {ms:F3} ms"));
}
