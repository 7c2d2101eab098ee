using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Benchmarks;

/// <summary>
/// The model shapes the GPU-session benchmarks build, and copies of one set of weights per precision. <c>tiny</c> is
/// the dry-run size: the training fixture's tiny WinTok (tests/fixtures/training) and the UniTok fixture's tiny ViTamin
/// (tests/fixtures/unitok), the same shapes the Python baselines' --preset tiny / --tiny build.
/// </summary>
internal static class BenchModels
{
    public const string Tiny = "tiny";

    /// <summary>The training fixture's encoder: SigLIP 64 wide, 2 layers, 4 heads, MLP 128, patch 8, 64 px.</summary>
    public static EncoderShape TinyEncoder { get; } = new(64, 2, 4, 128, 8, 64);

    public static IEnumerable<string> WinTokPresets => EncoderShape.Presets.Keys.Append(Tiny);

    /// <summary>A WinTok configuration by preset name (a decoder the size of the encoder), or null for an unknown name.</summary>
    public static WinTokConfig? WinTokConfigFor(string preset, int semanticTokens) =>
        preset == Tiny
            ? new WinTokConfig(TinyEncoder, semanticTokens, VocabSize: 256, VocabWidth: 16, NumCodebooks: 4,
                DecoderDepth: 2, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128)
            : EncoderShape.Presets.TryGetValue(preset, out var shape) ? WinTokConfig.ForPreset(shape, semanticTokens) : null;

    /// <summary>UniTok-L as released, or the fixture's tiny ViTamin at 48 px.</summary>
    public static UniTokConfig UniTokConfigFor(bool tiny) =>
        tiny
            ? new UniTokConfig(new ViTaminShape(8, 8, 16, 2, 4, 64, 2, 4), Model: "vitamin_tiny", ImgSize: 48, VocabSize: 512,
                VocabWidth: 32, NumCodebooks: 8, EmbedDim: 24, TextWidth: 4, TextHeads: 2, TextLayers: 2, TextContextLength: 32)
            : UniTokConfig.Released;

    /// <summary>A fresh copy of <paramref name="weights"/> on <paramref name="device"/>, readied for serving in <paramref name="dtype"/>.</summary>
    public static WinTokModel Clone(WinTokModel weights, Device device, ScalarType dtype, CudaFastPaths paths)
    {
        var copy = new WinTokModel(weights.Config);
        copy.load_state_dict(weights.state_dict());
        copy.to(device);
        return copy.PrepareForInference(dtype, InferenceKernels.For(device, paths));
    }

    /// <summary>As <see cref="Clone(WinTokModel, Device, ScalarType, CudaFastPaths)"/> for UniTok.</summary>
    public static UniTokModel Clone(UniTokModel weights, Device device, ScalarType dtype, CudaFastPaths paths)
    {
        var copy = new UniTokModel(weights.Config);
        copy.load_state_dict(weights.state_dict());
        copy.to(device);
        return copy.PrepareForInference(dtype, InferenceKernels.For(device, paths));
    }

    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }

    /// <summary>Seconds for <paramref name="iters"/> calls of <paramref name="step"/> after one untimed warm-up call, in inference mode.</summary>
    public static double Time(Device device, int iters, Action step)
    {
        using var inference = inference_mode();
        step();
        Synchronize(device);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < iters; i++) step();
        Synchronize(device);
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>One machine-readable line: <c>WINTOK kind key=value ...</c> (invariant culture, no spaces in values).</summary>
    public static void Emit(string kind, params (string Key, object? Value)[] fields)
    {
        var parts = new List<string> { "WINTOK", kind };
        foreach (var (key, value) in fields)
        {
            var text = value switch
            {
                null => "none",
                double d => d.ToString(Math.Abs(d) < 1e4 ? "G6" : "F1", CultureInfo.InvariantCulture),
                float f => f.ToString("G6", CultureInfo.InvariantCulture),
                IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
                _ => value.ToString() ?? "",
            };
            parts.Add($"{key}={text.Replace(' ', '_')}");
        }
        Console.WriteLine(string.Join(' ', parts));
    }

    /// <summary>Relative change of <paramref name="value"/> from <paramref name="reference"/> (0 when both are 0).</summary>
    public static double RelativeChange(double value, double reference) =>
        value == reference ? 0 : Math.Abs(value - reference) / Math.Max(Math.Abs(reference), double.Epsilon);
}
