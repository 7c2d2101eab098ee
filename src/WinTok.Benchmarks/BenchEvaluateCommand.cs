using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using WinTok.Evaluation;
using WinTok.Model;
using static TorchSharp.torch;
using static WinTok.Benchmarks.BenchModels;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench evaluate`: images/s of the whole evaluation step through the product's own code
/// (<see cref="PartitionEvaluation.Add"/>: upload of the 8-bit levels, encode + decode, clamp, PSNR and SSIM on the GPU,
/// LPIPS alex and vgg, Inception features of both sides, codebook usage, the per-image values copied back), per
/// precision, over a fixed number of batches after warm-up; then every metric per precision and how far bf16 moves each
/// from fp32 on the same images (issue 10 item 4). Timed like deploy/bench/eval_baseline.py, which runs the reference's
/// step; with <c>--reference DIR</c> (that script's --export) the same weights and images are used and our fp32 values
/// are printed beside the reference's.
/// </summary>
internal static class BenchEvaluateCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "Encoder preset: " + string.Join(", ", WinTokPresets), DefaultValueFactory = _ => "so400m-16-256" };
        var semanticTokens = new Option<int>("--semantic-tokens") { Description = "Number of semantic tokens N.", DefaultValueFactory = _ => 32 };
        var batch = new Option<int>("--batch") { Description = "Images per batch.", DefaultValueFactory = _ => 64 };
        var batches = new Option<int>("--batches") { Description = "Timed batches per mode.", DefaultValueFactory = _ => 8 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed batches first (their metrics count, as in the baseline).", DefaultValueFactory = _ => 2 };
        var modes = new Option<string>("--modes") { Description = "Comma-separated model precisions: fp32, bf16.", DefaultValueFactory = _ => "fp32,bf16" };
        var reference = new Option<string?>("--reference") { Description = "Folder written by eval_baseline.py --export: its weights and images are used and its metric values compared." };
        var components = new Option<bool>("--components") { Description = "Also time the model and the metric networks alone." };
        var device = new Option<string>("--device") { Description = "cuda or cpu.", DefaultValueFactory = _ => cuda.is_available() ? "cuda" : "cpu" };
        var command = new Command("evaluate", "Evaluation-step throughput (model and every metric) and the bf16-vs-fp32 change of each metric.")
        {
            preset, semanticTokens, batch, batches, warmup, modes, reference, components, device,
        };
        command.SetAction(parse => Run(new Settings(
            parse.GetValue(preset)!, parse.GetValue(semanticTokens), parse.GetValue(batch), parse.GetValue(batches), parse.GetValue(warmup),
            parse.GetValue(modes)!, parse.GetValue(reference), parse.GetValue(components), new Device(parse.GetValue(device)!))));
        return command;
    }

    private sealed record Settings(string Preset, int SemanticTokens, int Batch, int Batches, int Warmup, string Modes, string? Reference, bool Components, Device Device);

    /// <summary>What the reference's export holds: paths and the metric values it measured.</summary>
    private sealed record ReferenceRun(string Folder, long[] ImageShape, IReadOnlyDictionary<string, double> Metrics);

    private static int Run(Settings s)
    {
        var chosen = s.Modes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (chosen.Length == 0 || chosen.Except(["fp32", "bf16"]).FirstOrDefault() is { } unknown && unknown.Length > 0)
        {
            Console.Error.WriteLine($"Modes must be fp32 and/or bf16, got '{s.Modes}'");
            return 2;
        }
        if (WinTokConfigFor(s.Preset, s.SemanticTokens) is not { } config)
        {
            Console.Error.WriteLine($"Unknown preset '{s.Preset}'; choose one of {string.Join(", ", WinTokPresets)}");
            return 2;
        }
        manual_seed(0);
        var clock = Stopwatch.StartNew();
        var referenceRun = s.Reference is null ? null : ReadReference(s.Reference);
        var (weights, networks, origin) = Build(config, referenceRun, s.Device);
        using var _ = weights;
        using var __ = networks;
        var size = weights.Config.Encoder.ImageSize;
        var imageBytes = 3 * size * size;
        var count = s.Batch * (s.Warmup + s.Batches);
        var levels = origin == "reference" ? File.ReadAllBytes(Path.Combine(referenceRun!.Folder, "images.u8")) : RandomLevels(count, imageBytes);
        if (levels.Length < (long)count * imageBytes)
        {
            Console.Error.WriteLine($"The reference's images.u8 holds {levels.Length / imageBytes} images of 3x{size}x{size}; {count} are needed (batch {s.Batch} x {s.Warmup + s.Batches})");
            return 2;
        }
        Emit("eval", ("what", "setup"), ("weights", origin), ("preset", s.Preset), ("semantic_tokens", weights.Config.NumLatentTokens),
            ("images", count), ("device", s.Device.type.ToString().ToLowerInvariant()), ("seconds", clock.Elapsed.TotalSeconds),
            ("cudnn_tf32", backends.cudnn.allow_tf32), ("matmul_tf32", backends.cuda.matmul.allow_tf32));

        var results = new Dictionary<string, Dictionary<string, double>>();
        using var memory = new GpuMemorySampler();
        foreach (var mode in chosen)
        {
            var dtype = mode == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
            using var model = Clone(weights, s.Device, dtype, CudaFastPaths.All);
            results[mode] = MeasureStep(model, networks, levels, s, mode);
            if (s.Components) TimeComponents(model, networks, s, mode, size);
        }
        Emit("eval", ("what", "memory"), ("nvml_peak_mib", memory.PeakMiB), ("nvml_start_mib", memory.Start), ("source", memory.Source));
        CompareModes(results);
        if (referenceRun is not null && origin == "reference" && results.TryGetValue("fp32", out var ours)) CompareWithReference(ours, referenceRun);
        return 0;
    }

    /// <summary>The model and metric networks: the reference's exported weights when given and readable, else random.</summary>
    private static (WinTokModel Model, EvaluationNetworks Networks, string Origin) Build(WinTokConfig config, ReferenceRun? reference, Device device)
    {
        if (reference is not null)
        {
            var loaded = new List<IDisposable>();
            T Keep<T>(T network) where T : IDisposable
            {
                loaded.Add(network);
                return network;
            }
            try
            {
                var folder = reference.Folder;
                // sha256 given: hashing the 3.4 GB file would only cost time here
                var model = Keep(WinTokCheckpoint.Load(Path.Combine(folder, "wintok.pth"), config.Encoder, sha256: "not-computed").Model);
                var inception = Keep(FidInception.Load(Path.Combine(folder, "inception.pth")));
                var alex = Keep(Lpips.LoadPackage(LpipsVariant.Alex, Path.Combine(folder, "alexnet.pth"), Path.Combine(folder, "alex_heads.pth")));
                var vgg = Keep(Lpips.LoadPackage(LpipsVariant.Vgg, Path.Combine(folder, "vgg16.pth"), Path.Combine(folder, "vgg_heads.pth")));
                return (model, new EvaluationNetworks(inception, [alex, vgg], device), "reference");
            }
            catch (Exception e) when (e is not OutOfMemoryException) // fail soft: measure with random weights, without the comparison
            {
                loaded.ForEach(network => network.Dispose());
                Emit("skipped", ("step", "reference_weights"), ("reason", $"{e.GetType().Name}:{e.Message.Split('\n')[0]}"));
            }
        }
        return (new WinTokModel(config), new EvaluationNetworks(new FidInception(),
            [new Lpips(LpipsVariant.Alex), new Lpips(LpipsVariant.Vgg)], device), "random");
    }

    private static ReferenceRun? ReadReference(string folder)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference-metrics.json")));
            var root = json.RootElement;
            var metrics = root.GetProperty("metrics").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
            var shape = root.GetProperty("image_shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
            return new ReferenceRun(folder, shape, metrics);
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            Emit("skipped", ("step", "reference_metrics"), ("reason", $"{e.GetType().Name}:{e.Message.Split('\n')[0]}"));
            return null;
        }
    }

    private static byte[] RandomLevels(int count, int imageBytes)
    {
        using var generator = new Generator(1);
        using var levels = randint(0, 256, [count, imageBytes], ScalarType.Byte, generator: generator);
        return levels.bytes.ToArray();
    }

    /// <summary>Warm-up then timed batches through the product's evaluation step; returns every metric of all batches.</summary>
    private static Dictionary<string, double> MeasureStep(WinTokModel model, EvaluationNetworks networks, byte[] levels, Settings s, string mode)
    {
        var description = model.Description;
        using var accumulator = new MetricAccumulator(networks, new MetricAccumulatorOptions
        {
            Codebooks = new CodebookShape(description.NumCodebooks, description.CodebookSize),
        });
        using var partition = new PartitionEvaluation(model, accumulator, classifier: null, networks.Device, gridImages: 0);
        var batchBytes = s.Batch * 3 * description.ImageSize * description.ImageSize;
        void Batch(int i) => partition.Add(levels.AsSpan(i * batchBytes, batchBytes), s.Batch, []);
        for (var i = 0; i < s.Warmup; i++) Batch(i);
        Synchronize(s.Device);
        var clock = Stopwatch.StartNew();
        for (var i = s.Warmup; i < s.Warmup + s.Batches; i++) Batch(i); // each returns host values: a sync per batch, as the product
        Synchronize(s.Device);
        var seconds = clock.Elapsed.TotalSeconds;
        Emit("eval", ("what", "step"), ("mode", mode), ("batch", s.Batch), ("batches", s.Batches), ("warmup", s.Warmup),
            ("preset", s.Preset), ("img_per_s", s.Batch * s.Batches / seconds), ("seconds", seconds));

        var summary = partition.Finish().Metrics.Summarize(device: s.Device);
        var values = new Dictionary<string, double>
        {
            ["psnr"] = summary.Psnr,
            ["ssim"] = summary.Ssim,
        };
        foreach (var (variant, value) in summary.Lpips) values[$"lpips_{variant.ToString().ToLowerInvariant()}"] = value;
        if (summary.Fid is { } fid) values["rfid"] = fid;
        if (summary.Codebook is { } usage)
        {
            values["usage_percent"] = usage.UsedPercent;
            values["usage_entropy"] = usage.EntropyNats;
            values["usage_perplexity"] = usage.Perplexity;
        }
        foreach (var (name, value) in values) Emit("eval", ("what", "metric"), ("mode", mode), ("name", name), ("value", value), ("images", summary.Images));
        return values;
    }

    /// <summary>The model's encode + decode alone and the metric networks alone, on one batch (issue 10's breakdown).</summary>
    private static void TimeComponents(WinTokModel model, EvaluationNetworks networks, Settings s, string mode, int size)
    {
        using var scope = NewDisposeScope();
        var images = rand([s.Batch, 3, size, size], device: s.Device) * 2 - 1;
        var repeats = Math.Max(2, Math.Min(3, s.Batches));
        var seconds = Time(s.Device, repeats, () => model.Reconstruct(images).Dispose());
        Emit("eval", ("what", "component"), ("mode", mode), ("name", "model_encode_decode"), ("img_per_s", s.Batch * repeats / seconds), ("batch", s.Batch));
        using var reconstruction = model.Reconstruct(images);
        using var accumulator = new MetricAccumulator(networks);
        seconds = Time(s.Device, repeats, () => accumulator.AddBatch(images, reconstruction.Images).Dispose());
        Emit("eval", ("what", "component"), ("mode", mode), ("name", "metrics_psnr_ssim_lpips_inception"), ("img_per_s", s.Batch * repeats / seconds), ("batch", s.Batch));
    }

    private static void CompareModes(Dictionary<string, Dictionary<string, double>> results)
    {
        if (!results.TryGetValue("fp32", out var fp32) || !results.TryGetValue("bf16", out var bf16)) return;
        foreach (var (name, value) in fp32)
        {
            if (!bf16.TryGetValue(name, out var other)) continue;
            Emit("eval", ("what", "bf16_vs_fp32"), ("name", name), ("fp32", value), ("bf16", other), ("relative_change", RelativeChange(other, value)), ("absolute_change", Math.Abs(other - value)));
        }
    }

    private static void CompareWithReference(Dictionary<string, double> ours, ReferenceRun reference)
    {
        foreach (var (name, value) in reference.Metrics)
        {
            if (!ours.TryGetValue(name, out var mine)) continue;
            Emit("eval", ("what", "fp32_vs_reference"), ("name", name), ("reference", value), ("ours", mine), ("relative_difference", RelativeChange(mine, value)), ("absolute_difference", Math.Abs(mine - value)));
        }
    }
}
