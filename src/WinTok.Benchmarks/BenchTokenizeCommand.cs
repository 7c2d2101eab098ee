using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench tokenize`: model-only images/s for tokenize and tokenize + detokenize, timed like
/// deploy/bench/torch_baseline.py (input already on the device, synchronize around a fixed number of batches), plus
/// how often bfloat16 tokens agree with the float32 path on the same weights and input.
/// </summary>
internal static class BenchTokenizeCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "Encoder preset: " + string.Join(", ", EncoderShape.Presets.Keys), DefaultValueFactory = _ => "so400m-16-256" };
        var semanticTokens = new Option<int>("--semantic-tokens") { Description = "Number of semantic tokens N.", DefaultValueFactory = _ => 32 };
        var batch = new Option<int>("--batch") { Description = "Images per batch.", DefaultValueFactory = _ => 128 };
        var modes = new Option<string>("--modes") { Description = "Comma-separated precisions: bf16, bf16-torch (bf16 without the cuBLASLt epilogues and our CUDA kernels), tf32, fp32.", DefaultValueFactory = _ => "bf16" };
        var iters = new Option<int>("--iters") { Description = "Timed batches per measurement.", DefaultValueFactory = _ => 5 };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint to load (.pth or .safetensors); random weights when absent." };
        var device = new Option<string>("--device") { Description = "cuda or cpu.", DefaultValueFactory = _ => cuda.is_available() ? "cuda" : "cpu" };
        var agreement = new Option<bool>("--agreement") { Description = "Also measure bf16 vs fp32 token agreement on one batch." };
        var model = new Option<string>("--model") { Description = "wintok, or unitok (UniTok-L as released; --preset tiny: the fixture's tiny ViTamin).", DefaultValueFactory = _ => "wintok" };
        var command = new Command("tokenize", "Model-only tokenize and round-trip throughput.")
        {
            preset, semanticTokens, batch, modes, iters, checkpoint, device, agreement, model,
        };
        command.SetAction(parse => parse.GetValue(model) switch
        {
            "unitok" => RunUniTok(parse.GetValue(preset) == BenchModels.Tiny, parse.GetValue(batch), parse.GetValue(modes)!,
                parse.GetValue(iters), parse.GetValue(checkpoint), parse.GetValue(device)!, parse.GetValue(agreement)),
            "wintok" => Run(
                parse.GetValue(preset)!, parse.GetValue(semanticTokens), parse.GetValue(batch), parse.GetValue(modes)!,
                parse.GetValue(iters), parse.GetValue(checkpoint), parse.GetValue(device)!, parse.GetValue(agreement)),
            var other => Unknown(other),
        });
        return command;
    }

    private static int Unknown(string? model)
    {
        Console.Error.WriteLine($"Unknown model '{model}'; choose wintok or unitok");
        return 2;
    }

    /// <summary>
    /// UniTok (issue 13 item 5): the same two timings as for WinTok, against deploy/bench/unitok_baseline.py (the
    /// reference model under bf16 autocast). Random weights unless a checkpoint is given.
    /// </summary>
    private static int RunUniTok(bool tiny, int batch, string modes, int iters, string? checkpoint, string deviceName, bool agreement)
    {
        var chosen = modes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (chosen.Length == 0 || chosen.Any(m => m is not ("bf16" or "bf16-noconv" or "bf16-torch" or "tf32" or "fp32")))
        {
            Console.Error.WriteLine($"Unknown modes '{modes}'; choose from bf16, bf16-noconv (without the convolution rewrites), bf16-torch, tf32, fp32");
            return 2;
        }
        var device = new Device(deviceName);
        manual_seed(0);
        using var weights = checkpoint is null ? new UniTokModel(BenchModels.UniTokConfigFor(tiny)) : UniTokCheckpoint.Load(checkpoint).Model;
        var config = weights.Config;
        Console.WriteLine($"WINTOK model kind=unitok encoder={config.Model} image={config.ImgSize} weights={checkpoint ?? "random"} device={deviceName}");
        foreach (var mode in chosen)
        {
            backends.cuda.matmul.allow_tf32 = mode == "tf32";
            backends.cudnn.allow_tf32 = mode == "tf32";
            var paths = mode switch
            {
                "bf16-torch" => CudaFastPaths.None,
                "bf16-noconv" => CudaFastPaths.All with { Convolutions = false },
                _ => CudaFastPaths.All,
            };
            using var model = BenchModels.Clone(weights, device, mode.StartsWith("bf16", StringComparison.Ordinal) ? ScalarType.BFloat16 : ScalarType.Float32, paths);
            using var input = rand([batch, 3, config.ImgSize, config.ImgSize], device: device) * 2 - 1;
            ReportUniTok("tokenize", mode, config, batch, BenchModels.Time(device, iters, () => model.ImageToIndices(input).Dispose()), batch * iters);
            var roundTrips = Math.Max(1, iters - 2);
            ReportUniTok("roundtrip", mode, config, batch, BenchModels.Time(device, roundTrips, () =>
            {
                using var scope = NewDisposeScope();
                model.IndicesToImage(model.ImageToIndices(input));
            }), batch * roundTrips);
            Console.WriteLine($"WINTOK gpu_memory model=unitok mode={mode} used_mib={GpuMemoryUsedMiB()}");
        }
        if (!agreement) return 0;
        backends.cuda.matmul.allow_tf32 = false;
        backends.cudnn.allow_tf32 = false;
        // The float32 reference runs torch's ops as the modules are written (no rewrites), with TF32 off.
        using var fp32 = BenchModels.Clone(weights, device, ScalarType.Float32, CudaFastPaths.None);
        using var inference = inference_mode();
        using var agreementScope = NewDisposeScope();
        var images = rand([batch, 3, config.ImgSize, config.ImgSize], device: device) * 2 - 1;
        var reference = fp32.ImageToIndices(images);
        var decoded = fp32.IndicesToImage(reference).clamp(-1, 1);
        var variants = device.type == DeviceType.CUDA
            ? new[] { ("bf16", CudaFastPaths.All), ("bf16-noconv", CudaFastPaths.All with { Convolutions = false }), ("bf16-torch", CudaFastPaths.None) }
            : [("bf16", CudaFastPaths.All)];
        foreach (var (name, paths) in variants)
        {
            using var bf16 = BenchModels.Clone(weights, device, ScalarType.BFloat16, paths);
            Report(name, reference, bf16.ImageToIndices(images), batch);
            // The decoder on the float32 path's ids: how far each bf16 variant's pixels are from float32's.
            var difference = (bf16.IndicesToImage(reference).clamp(-1, 1) - decoded).abs();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"WINTOK bf16_decode mode={name} mean_abs_vs_fp32={difference.mean().item<float>():E3} max_abs_vs_fp32={difference.max().item<float>():E3} batch={batch}"));
        }
        return 0;
    }

    private static void ReportUniTok(string op, string mode, UniTokConfig config, int batch, double seconds, int images) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"WINTOK op={op} mode={mode} model=unitok encoder={config.Model} batch={batch} img_per_s={images / seconds:F1}"));

    private static int Run(string presetName, int semanticTokens, int batch, string modes, int iters, string? checkpoint, string deviceName, bool agreement)
    {
        if (!EncoderShape.Presets.TryGetValue(presetName, out var shape))
        {
            Console.Error.WriteLine($"Unknown preset '{presetName}'; choose one of {string.Join(", ", EncoderShape.Presets.Keys)}");
            return 2;
        }
        string[] known = ["bf16", "bf16-torch", "tf32", "fp32"];
        var chosen = modes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if ((chosen.Length == 0 ? modes : chosen.Except(known).FirstOrDefault()) is { } unknown)
        {
            Console.Error.WriteLine($"Unknown mode '{unknown}'; choose from {string.Join(", ", known)}");
            return 2;
        }
        var device = new Device(deviceName);
        var weights = LoadOrCreate(checkpoint, shape, semanticTokens);
        var config = weights.Config;
        manual_seed(0);
        Console.WriteLine($"WINTOK model preset={presetName} semantic_tokens={config.NumLatentTokens} weights={(checkpoint is null ? "random" : checkpoint)} device={deviceName}");

        foreach (var mode in chosen)
        {
            backends.cuda.matmul.allow_tf32 = mode == "tf32";
            backends.cudnn.allow_tf32 = mode == "tf32";
            // bf16-torch: bf16 with every linear layer and norm through torch, for comparison
            var paths = mode == "bf16-torch" ? CudaFastPaths.None : CudaFastPaths.All;
            using var model = Clone(weights, device, mode.StartsWith("bf16", StringComparison.Ordinal) ? ScalarType.BFloat16 : ScalarType.Float32, paths);
            using var input = (rand([batch, 3, config.Encoder.ImageSize, config.Encoder.ImageSize], device: device) * 2 - 1);
            Report("tokenize", mode, presetName, config, batch, Time(device, iters, () => model.ImageToIndices(input).Dispose()), batch * iters);
            Report("roundtrip", mode, presetName, config, batch, Time(device, Math.Max(1, iters - 2), () =>
            {
                using var scope = NewDisposeScope();
                model.IndicesToImage(model.ImageToIndices(input));
            }), batch * Math.Max(1, iters - 2));
            Console.WriteLine($"WINTOK gpu_memory mode={mode} used_mib={GpuMemoryUsedMiB()}");
        }
        foreach (var line in InferenceKernels.For(device, CudaFastPaths.All).Describe()) Console.WriteLine($"WINTOK {line}");
        if (agreement) MeasureAgreement(weights, device, batch);
        weights.Dispose();
        return 0;
    }

    private static void MeasureAgreement(WinTokModel weights, Device device, int batch)
    {
        backends.cuda.matmul.allow_tf32 = false;
        backends.cudnn.allow_tf32 = false;
        using var fp32 = Clone(weights, device, ScalarType.Float32, CudaFastPaths.All);
        using var bf16 = Clone(weights, device, ScalarType.BFloat16, CudaFastPaths.All);
        var size = weights.Config.Encoder.ImageSize;
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var input = rand([batch, 3, size, size], device: device) * 2 - 1;
        var reference = fp32.ImageToIndices(input);
        Report("bf16", reference, bf16.ImageToIndices(input), batch);
        if (device.type != DeviceType.CUDA) return;
        using var bf16Torch = Clone(weights, device, ScalarType.BFloat16, CudaFastPaths.None);
        Report("bf16-torch", reference, bf16Torch.ImageToIndices(input), batch);
    }

    private static void Report(string mode, Tensor reference, Tensor fast, int batch)
    {
        var equal = reference.eq(fast).to(float32);
        var perCodebook = equal.mean([0, 2]).cpu().data<float>().ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"WINTOK bf16_agreement mode={mode} tokens={equal.mean().item<float>() * 100:F2}% per_codebook=[{string.Join(", ", perCodebook.Select(p => (p * 100).ToString("F2", CultureInfo.InvariantCulture)))}] images_all_equal={equal.flatten(1).min(1).values.mean().item<float>() * 100:F2}% batch={batch}"));
    }

    private static WinTokModel LoadOrCreate(string? checkpoint, EncoderShape shape, int semanticTokens)
    {
        if (checkpoint is not null) return WinTokCheckpoint.Load(checkpoint).Model;
        return new WinTokModel(WinTokConfig.ForPreset(shape, semanticTokens));
    }

    /// <summary>A fresh copy on the device in the given precision, so each mode starts from the same weights.</summary>
    private static WinTokModel Clone(WinTokModel weights, Device device, ScalarType dtype, CudaFastPaths paths)
    {
        var copy = new WinTokModel(weights.Config);
        copy.load_state_dict(weights.state_dict());
        copy.to(device);
        return copy.PrepareForInference(dtype, InferenceKernels.For(device, paths));
    }

    private static double Time(Device device, int iters, Action step)
    {
        using var inference = inference_mode();
        step(); // warm-up: kernels selected, allocator grown
        Synchronize(device);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < iters; i++) step();
        Synchronize(device);
        return clock.Elapsed.TotalSeconds;
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }

    private static void Report(string op, string mode, string preset, WinTokConfig config, int batch, double seconds, int images) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"WINTOK op={op} mode={mode} preset={preset} semantic_tokens={config.NumLatentTokens} batch={batch} img_per_s={images / seconds:F1}"));

    /// <summary>Device memory in use as nvidia-smi reports it (includes the caching allocator's reserve); -1 without one.</summary>
    private static int GpuMemoryUsedMiB()
    {
        try
        {
            using var smi = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-gpu=memory.used --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
            })!;
            var text = smi.StandardOutput.ReadToEnd();
            smi.WaitForExit();
            return int.Parse(text.Split('\n')[0].Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }
}
