using System.CommandLine;
using System.Text.Json;
using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.Model;
using WinTok.Training;
using static TorchSharp.torch;
using static WinTok.Benchmarks.BenchModels;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench train-curve`: the training fixture's run (tests/fixtures/training: tiny WinTok, its teacher, the
/// DINOv2 discriminator and LPIPS with the README's formula weights, 20 iterations with the reference's recorded random
/// draws) through <see cref="WinTokTrainer"/> in fp32 and in bf16 on the chosen device, printing per iteration the loss
/// terms of both beside the reference's recorded fp32 values (issue 12 item 3: how the bf16 curve follows fp32).
/// </summary>
internal static class BenchTrainCurveCommand
{
    private static readonly string[] Terms = ["Lv_total", "L1", "L2", "Lpips", "Lq", "Le", "Ldistill", "Lg", "Ld_total"];

    public static Command Create()
    {
        var fixture = new Option<string>("--fixture") { Description = "The training fixture folder.", DefaultValueFactory = _ => Path.Combine("tests", "fixtures", "training") };
        var precisions = new Option<string>("--precisions") { Description = "Comma-separated: fp32, bf16.", DefaultValueFactory = _ => "fp32,bf16" };
        var device = new Option<string>("--device") { Description = "cuda or cpu.", DefaultValueFactory = _ => cuda.is_available() ? "cuda" : "cpu" };
        var command = new Command("train-curve", "The training fixture's 20 iterations in fp32 and bf16, loss curves beside the reference's.")
        {
            fixture, precisions, device,
        };
        command.SetAction(parse => Run(parse.GetValue(fixture)!, parse.GetValue(precisions)!, new Device(parse.GetValue(device)!)));
        return command;
    }

    private static int Run(string folder, string precisions, Device device)
    {
        var chosen = precisions.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (chosen.Length == 0 || chosen.Any(p => p is not ("fp32" or "bf16")))
        {
            Console.Error.WriteLine($"Precisions must be fp32 and/or bf16, got '{precisions}'");
            return 2;
        }
        if (!File.Exists(Path.Combine(folder, "config.json")))
        {
            Console.Error.WriteLine($"No training fixture in '{folder}' (config.json missing); run from the repository root or pass --fixture");
            return 2;
        }
        // The reference fixture is fp32 without TF32: so are our fp32 runs.
        backends.cuda.matmul.allow_tf32 = false;
        backends.cudnn.allow_tf32 = false;
        var fixture = new CurveFixture(folder);
        var curves = chosen.ToDictionary(p => p, p => fixture.Train(p == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32, device));
        using var records = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "records.json")));
        var steps = records.RootElement.GetProperty("steps");
        var worst = new Dictionary<(string Precision, string Term), double>();
        for (var i = 0; i < fixture.Iterations; i++)
        {
            var losses = steps[i].GetProperty("losses");
            foreach (var term in Terms)
            {
                double? reference = losses.TryGetProperty(term, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
                var ours = chosen.Select(p => (Precision: p, Value: Value(curves[p][i], term))).ToList();
                if (reference is null && ours.All(o => o.Value is null)) continue;
                var fields = new List<(string, object?)> { ("iter", i), ("term", term), ("reference_fp32", reference) };
                foreach (var (precision, value) in ours)
                {
                    fields.Add((precision, value));
                    if (reference is { } r && value is { } x)
                    {
                        var change = RelativeChange(x, r);
                        fields.Add(($"{precision}_rel", change));
                        worst[(precision, term)] = Math.Max(worst.GetValueOrDefault((precision, term)), change);
                    }
                }
                Emit("curve", [.. fields]);
            }
        }
        foreach (var ((precision, term), value) in worst.OrderBy(p => p.Key.Precision).ThenBy(p => Array.IndexOf(Terms, p.Key.Term)))
            Emit("curve", ("what", "max_relative_difference_to_reference"), ("precision", precision), ("term", term), ("value", value));
        return 0;
    }

    private static double? Value(TrainStepResult r, string term) => term switch
    {
        "Lv_total" => r.LvTotal,
        "L1" => r.L1,
        "L2" => r.L2,
        "Lpips" => r.Lpips,
        "Lq" => r.Lq,
        "Le" => r.Le,
        "Ldistill" => r.Ldistill,
        "Lg" => r.Lg,
        "Ld_total" => r.LdTotal,
        _ => null,
    };

    /// <summary>The fixture's networks, options, batches and recorded draws (see tests/fixtures/training/README.md).</summary>
    private sealed class CurveFixture
    {
        private readonly string folder;
        private readonly IReadOnlyDictionary<string, object?> config;
        private readonly IReadOnlyDictionary<string, object?> args;
        private readonly EncoderShape encoder;

        public CurveFixture(string folder)
        {
            this.folder = folder;
            config = ArgsJson.Deserialize(File.ReadAllText(Path.Combine(folder, "config.json")));
            args = Dictionary(config, "args_used");
            encoder = ReferenceArgs.EncoderFromHfConfig(Dictionary(config, "encoder_config"));
            Iterations = (int)(long)config["iterations"]!;
        }

        public int Iterations { get; }

        public List<TrainStepResult> Train(ScalarType precision, Device device)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var generator = WinTokCheckpoint.Load(Path.Combine(folder, "init_generator.safetensors"), encoder, Dictionary(config, "args")).Model;
            generator.to(device);
            using var teacher = SiglipTeacher.Load(Path.Combine(folder, "teacher.safetensors"), encoder);
            teacher.to(device);
            using var discriminator = LoadDiscriminator().MoveTo(device);
            using var lpips = BuildLpips();
            lpips.to(device);
            var schedule = Dictionary(config, "schedule");
            var options = TrainingOptions.FromReferenceArgs(args, (long)schedule["num_batches"]!) with { Precision = precision };
            var batches = Safetensors.Read(Path.Combine(folder, "batches.safetensors")).Tensors;
            using var images = batches["images"].to(device);
            var indices = batches["batch_indices"];
            var recorded = Safetensors.Read(Path.Combine(folder, "records.safetensors")).Tensors;
            var random = new ReplayRandomness(recorded);
            using var trainer = new WinTokTrainer(generator, discriminator, teacher, new LpipsLoss(lpips), options, random);
            var results = new List<TrainStepResult>();
            for (var i = 0; i < Iterations; i++)
            {
                random.Expect(i);
                using var scope = NewDisposeScope();
                results.Add(trainer.TrainStep(images.index_select(0, indices[i].to(device)), i));
            }
            Emit("curve", ("what", "run"), ("precision", precision == ScalarType.BFloat16 ? "bf16" : "fp32"),
                ("device", device.type.ToString().ToLowerInvariant()), ("iterations", Iterations), ("seconds", clock.Elapsed.TotalSeconds));
            foreach (var t in batches.Values.Concat(recorded.Values)) t.Dispose();
            return results;
        }

        private DinoDiscriminator LoadDiscriminator()
        {
            var discriminatorConfig = Dictionary(config, "discriminator");
            var arch = Dictionary(discriminatorConfig, "backbone_arch");
            var dino = new DinoConfig(
                EmbedDim: Int(arch, "embed_dim"), Depth: Int(arch, "depth"), Heads: Int(arch, "num_heads"), MlpRatio: Number(arch["mlp_ratio"]),
                PatchSize: Int(arch, "patch_size"), ImageSize: Int(arch, "img_size"), InterpolateOffset: Number(arch["interpolate_offset"]),
                LayerNormEps: Number(arch["layernorm_eps"]));
            var weights = new Dictionary<string, Tensor>();
            var table = List(discriminatorConfig, "backbone_params");
            for (var k = 0; k < table.Count; k++)
            {
                var row = (IReadOnlyList<object?>)table[k]!;
                var shape = ((IReadOnlyList<object?>)row[1]!).Select(v => (long)v!).ToArray();
                weights[(string)row[0]!] = tensor(FormulaWeights.Values(shape, k, (string)row[3]!)).reshape(shape);
            }
            var backbone = DinoVisionTransformer.FromStateDict(weights, dino);
            foreach (var t in weights.Values) t.Dispose();
            var discriminator = new DinoDiscriminator(backbone, new DiscriminatorConfig(
                List(discriminatorConfig, "key_depths").Select(v => (int)(long)v!).ToArray(),
                KernelSize: Int(discriminatorConfig, "kernel_size"), InitGain: -Number(args["disc_init"])));
            using var heads = CheckpointFile.Read(Path.Combine(folder, "init_discriminator.safetensors"));
            heads.LoadInto(discriminator);
            return discriminator;
        }

        /// <summary>The training LPIPS with the formula weights of the fixture's table (rules by name, as the fixture README gives them).</summary>
        private Lpips BuildLpips()
        {
            var table = List(Dictionary(config, "lpips"), "params").Cast<IReadOnlyList<object?>>().ToList();
            var weights = new Dictionary<string, Tensor>();
            for (var k = 0; k < table.Count; k++)
            {
                var name = (string)table[k][0]!;
                var shape = ((IReadOnlyList<object?>)table[k][1]!).Select(v => (long)v!).ToArray();
                var rule = shape.Length == 1 ? "0.05*s" : name.StartsWith("lins.", StringComparison.Ordinal) ? "|s*sqrt(3/fan_in)|" : "s*sqrt(3/fan_in)";
                weights[name] = tensor(FormulaWeights.Values(shape, k, rule)).reshape(shape);
            }
            try
            {
                return Lpips.FromTensors(weights, "formula weights of " + folder);
            }
            finally
            {
                foreach (var t in weights.Values) t.Dispose();
            }
        }


        private static IReadOnlyDictionary<string, object?> Dictionary(IReadOnlyDictionary<string, object?> parent, string key) =>
            (IReadOnlyDictionary<string, object?>)parent[key]!;

        private static IReadOnlyList<object?> List(IReadOnlyDictionary<string, object?> parent, string key) => (IReadOnlyList<object?>)parent[key]!;

        private static int Int(IReadOnlyDictionary<string, object?> d, string key) => checked((int)(long)d[key]!);

        private static double Number(object? value) => value switch
        {
            long l => l,
            double x => x,
            var other => throw new InvalidDataException($"Not a number in the fixture's config.json: {other}"),
        };
    }

    /// <summary>Replays the reference's recorded draws (records.safetensors <c>it{II}.call{k}.*</c>) in the order it drew them.</summary>
    private sealed class ReplayRandomness(IReadOnlyDictionary<string, Tensor> recorded) : ITrainingRandomness
    {
        private readonly Queue<(string Kind, object Value)> draws = new();
        private int iteration = -1;

        public void Expect(int next)
        {
            if (draws.Count > 0) throw new InvalidOperationException($"Iteration {iteration} left {draws.Count} recorded draws unused");
            iteration = next;
            for (var call = 0; recorded.ContainsKey($"it{next:00}.call{call}.aug_flags_rand"); call++)
            {
                var prefix = $"it{next:00}.call{call}.";
                draws.Enqueue(("switches", recorded[prefix + "aug_flags_rand"]));
                draws.Enqueue(("uniforms", recorded[prefix + "aug_rand01"]));
                draws.Enqueue(("coin", recorded[prefix + "coin"].item<double>()));
                if (recorded.TryGetValue(prefix + "crop_top_left", out var crop))
                    draws.Enqueue(("crop", (crop[0].item<long>(), crop[1].item<long>())));
            }
        }

        public Tensor AugmentationSwitches() => ((Tensor)Next("switches")).clone();

        public Tensor AugmentationUniforms(long batch, Device device) => ((Tensor)Next("uniforms")).to(device).clone();

        public double ResizeCoin() => (double)Next("coin");

        public (long Top, long Left) CropOffset(long topRange, long leftRange) => ((long, long))Next("crop");

        private object Next(string kind)
        {
            if (draws.Count == 0) throw new InvalidOperationException($"Iteration {iteration}: a {kind} draw the reference never made");
            var (recordedKind, value) = draws.Dequeue();
            return recordedKind == kind ? value : throw new InvalidOperationException($"Iteration {iteration}: a {kind} draw where the reference drew {recordedKind}");
        }
    }
}
