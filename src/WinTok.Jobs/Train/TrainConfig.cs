using System.Globalization;
using System.Text.Json;
using WinTok.Jobs.Evaluate;

namespace WinTok.Jobs.Train;

/// <summary>What a training run does with evaluations: a template of <see cref="EvaluateRequest"/> submitted per checkpoint.</summary>
/// <param name="Dataset">The images (folder, ImageFolder or WebDataset tars, local or blob).</param>
/// <param name="Metrics">Metric names (<see cref="EvaluationMetrics"/>).</param>
/// <param name="Weights">The metric networks' weights folder, when a metric needs one.</param>
/// <param name="TextTower">WinTok zero-shot: the HF SigLIP2 folder.</param>
public sealed record EvaluationTemplate(string Dataset, IReadOnlyList<string> Metrics, string? Weights, string? TextTower,
    string Precision, string? DatasetName, int FilesPerPartition);

/// <summary>
/// A training configuration file, parsed and checked: the reference's <c>Args</c> names (utils/config.py of
/// markywg/WinTok, so a <c>train.sh</c>'s values carry over) plus ours (<c>train_data</c> locations, <c>output</c>,
/// <c>init</c>, the weight files, checkpoint and log cadence, evaluations). <see cref="Parse"/> names every problem at
/// once, unknown keys with the nearest known name.
/// </summary>
/// <param name="Args">Every reference argument with its value (the file's or the default), as checkpoints carry them.</param>
/// <param name="Ignored">Keys the file sets that the trainer accepts but does not use (logging paths, UniTok leftovers, ...).</param>
/// <param name="Given">The keys the file sets (the rest are defaults).</param>
public sealed record TrainConfig(
    IReadOnlyDictionary<string, object?> Args,
    IReadOnlyList<string> TrainData,
    string Output,
    string? Init,
    string Teacher,
    string? Lpips,
    string Dino,
    int? DinoHeads,
    long? TrainNumSamples,
    int LocalBatch,
    int? SaveEvery,
    int LogEvery,
    int? EvaluateEvery,
    EvaluationTemplate? Evaluation,
    string Precision,
    long? Seed,
    string Device,
    int KeepCheckpoints,
    bool SaveSafetensors,
    bool TensorBoard,
    int ShuffleBuffer,
    long MaxPixels,
    int FilesPerPartition,
    IReadOnlyList<string> Ignored,
    IReadOnlySet<string> Given)
{
    public const string Float32 = "fp32";
    public const string BFloat16 = "bf16";

    private enum Kind { Int, Real, Bool, Text, TextOrNull, IntOrNull, RealOrNull }

    /// <summary>How the trainer treats a reference argument.</summary>
    private enum Use { Used, Ignored, Fixed }

    /// <param name="Reason">Fixed: why only the default is supported.</param>
    private sealed record Spec(string Name, Kind Kind, object? Default, Use Use = Use.Used, string? Reason = null, string? Alias = null);

    // utils/config.py Args, in its order, with its defaults.
    private static readonly Spec[] ReferenceArgs =
    [
        new("model", Kind.TextOrNull, null, Alias: "teacher"),
        new("exp_name", Kind.Text, "wintok", Use.Ignored),
        new("output_dir", Kind.TextOrNull, null, Alias: "output"),
        new("resume_from", Kind.Text, "", Use.Fixed, "a run resumes by itself from its output's checkpoints; to start from another checkpoint's weights give it as init"),
        new("lpips_path", Kind.TextOrNull, null, Alias: "lpips"),
        new("dino_path", Kind.TextOrNull, null, Alias: "dino"),
        new("fid_eval_src", Kind.TextOrNull, null, Use.Ignored),
        new("fid_eval_dst", Kind.TextOrNull, null, Use.Ignored),
        new("vis_img_dir", Kind.TextOrNull, null, Use.Ignored),
        new("fid_feature_extractor", Kind.TextOrNull, null, Use.Ignored),
        new("fp16", Kind.Bool, false, Use.Fixed, "fp16 needs a loss scaler the trainer does not have; use precision bf16"),
        new("bf16", Kind.Bool, true),
        new("tf32", Kind.Bool, true),
        new("compile_model", Kind.Bool, false, Use.Ignored),
        new("ddp_static", Kind.Bool, false, Use.Ignored),
        new("grad_ckpt", Kind.Bool, false, Use.Ignored),
        new("grad_accu", Kind.Int, 4L),
        new("dtype", Kind.TextOrNull, null, Use.Ignored),
        new("val_data", Kind.TextOrNull, null, Use.Ignored),
        new("dataset_type", Kind.Text, "webdataset", Use.Ignored),
        new("imagenet_train", Kind.TextOrNull, null, Use.Ignored),
        new("imagenet_val", Kind.TextOrNull, null, Use.Ignored),
        new("imagenet_v2", Kind.TextOrNull, null, Use.Ignored),
        new("subset_ratio", Kind.Real, 1.0, Use.Fixed, "the trainer reads the whole corpus"),
        new("img_size", Kind.IntOrNull, null),
        new("resize_ratio", Kind.Real, 1.125, Use.Ignored),
        new("hflip", Kind.Bool, false, Use.Fixed, "the reference's training transform has no flip"),
        new("workers", Kind.Int, 0L, Use.Ignored),
        new("train_num_samples", Kind.IntOrNull, null),
        new("train_data_upsampling_factors", Kind.TextOrNull, null, Use.Fixed, "every corpus is read once per data epoch"),
        new("dataset_resampled", Kind.Bool, false, Use.Fixed, "partitions are read without replacement"),
        new("use_aug", Kind.Bool, false),
        new("vocab_size", Kind.Int, 16384L),
        new("vocab_width", Kind.Int, 32L),
        new("vocab_norm", Kind.Bool, true, Use.Fixed, "WinTok's codebooks are cosine (normalised)"),
        new("vq_beta", Kind.Real, 0.25),
        new("num_codebooks", Kind.Int, 4L),
        new("embed_dim", Kind.Int, 768L, Use.Ignored),
        new("num_query", Kind.Int, 0L, Use.Ignored),
        new("use_clip_pretrain", Kind.Bool, false, Use.Ignored),
        new("patch_size", Kind.Int, 16L, Use.Ignored),
        new("drop_path", Kind.Real, 0.1, Use.Ignored),
        new("text_width", Kind.Int, 768L, Use.Ignored),
        new("text_heads", Kind.Int, 12L, Use.Ignored),
        new("text_layers", Kind.Int, 12L, Use.Ignored),
        new("text_vocab_size", Kind.Int, 49408L, Use.Ignored),
        new("text_context_length", Kind.Int, 77L, Use.Ignored),
        new("num_latent_tokens", Kind.Int, 32L),
        new("decoder_rec_depth", Kind.Int, 27L),
        new("decoder_rec_num_heads", Kind.Int, 16L),
        new("decoder_rec_hidden_size", Kind.Int, 1152L),
        new("decoder_rec_intermediate_size", Kind.Int, 4304L),
        new("local_loss", Kind.Bool, true, Use.Ignored),
        new("gather_with_grad", Kind.Bool, true, Use.Ignored),
        new("pretrained_clip", Kind.TextOrNull, null, Use.Ignored),
        new("pretrained_clip_text", Kind.TextOrNull, null, Use.Ignored),
        new("lock_text", Kind.Bool, true, Use.Ignored),
        new("lock_text_unlocked_layers", Kind.Int, 0L, Use.Ignored),
        new("lock_text_freeze_layer_norm", Kind.Bool, false, Use.Ignored),
        new("force_custom_text", Kind.Bool, false, Use.Ignored),
        new("force_custom_vision", Kind.Bool, false, Use.Ignored),
        new("zeroshot_eval_freq", Kind.Int, 1L, Use.Ignored),
        new("dino_depth", Kind.Int, 12L, Use.Ignored),
        new("dino_kernel_size", Kind.Int, 9L),
        new("disc_norm", Kind.Text, "gn", Use.Fixed, "the discriminator implements the reference's group norm"),
        new("disc_aug_prob", Kind.Real, 1.0),
        new("disc_specnorm", Kind.Bool, false, Use.Fixed, "the discriminator has no spectral norm, as the reference runs it"),
        new("step_disc_every", Kind.Int, 1L, Use.Fixed, "the reference trainer steps the discriminator every iteration"),
        new("vae_init", Kind.Real, -0.5, Use.Ignored),
        new("vocab_init", Kind.Real, -1.0),
        new("disc_init", Kind.Real, -0.5),
        new("epoch", Kind.Int, 5L),
        new("local_bs", Kind.Int, 8L),
        new("vae_local_bs", Kind.Int, 8L, Use.Ignored),
        new("global_bs", Kind.Int, 0L),
        new("lr", Kind.Real, 2e-4),
        new("wd", Kind.Real, 0.02),
        new("disc_lr", Kind.Real, 1e-5),
        new("disc_wd", Kind.Real, 0.2),
        new("grad_clip", Kind.Real, 10.0),
        new("ema", Kind.Real, 0.9999, Use.Ignored),
        new("warmup_iter", Kind.IntOrNull, null, Use.Fixed, "the reference's schedule reads warmup_ep"),
        new("warmup_ep", Kind.Real, 0.02),
        new("disc_start_ep", Kind.Real, 0.2),
        new("disc_warmup_ep", Kind.Real, 0.02),
        new("schedule", Kind.Text, "cos", Use.Fixed, "the trainer implements the reference's cosine schedule"),
        new("lr_start_ratio", Kind.Real, 0.0),
        new("lr_end_ratio", Kind.Real, 0.1),
        new("disc_lr_end_ratio", Kind.Real, 0.1),
        new("custom_lr_multiplier", Kind.RealOrNull, null, Use.Fixed, "the trainer implements the reference default (no multiplier)"),
        new("optimizer", Kind.Text, "adamw", Use.Fixed, "the trainer implements AdamW"),
        new("optim_eps", Kind.Real, 1e-6),
        new("fuse_opt", Kind.Bool, false, Use.Ignored),
        new("optim_beta", Kind.Text, "0.9_0.95"),
        new("disc_optim_beta", Kind.Text, "0.5_0.9"),
        new("l1", Kind.Real, 0.2),
        new("l2", Kind.Real, 1.0),
        new("lp", Kind.Real, 1.0),
        new("lpr", Kind.Int, 48L),
        new("ld", Kind.Real, 0.5),
        new("llecam", Kind.Real, 0.05),
        new("le", Kind.Real, 0.1),
        new("lq", Kind.Real, 1.0),
        new("lc", Kind.Real, 0.0, Use.Fixed, "the CLIP loss is UniTok's; WinTok trains no text tower"),
        new("ldistill", Kind.Real, 1.0),
        new("e_temp", Kind.Real, 0.01),
        new("gada", Kind.Int, 1L),
        new("bcr", Kind.Real, 4.0),
        new("bcr_cut", Kind.Real, 0.2),
        new("dcrit", Kind.Text, "hg"),
        new("use_tensorboard", Kind.Bool, true),
        new("tensorboard_log_dir", Kind.Text, "logs", Use.Ignored),
        new("run_id", Kind.TextOrNull, null, Use.Ignored),
        new("eval_per_epoch", Kind.Int, 20L),
        new("print_freq", Kind.Int, 100L, Use.Ignored),
        new("dbg_unused_param", Kind.Bool, false, Use.Ignored),
        new("dbg_nan", Kind.Bool, false, Use.Ignored),
        new("seed", Kind.IntOrNull, null),
        new("deterministic", Kind.Bool, false, Use.Ignored),
        new("same_seed_for_all_ranks", Kind.Int, 0L, Use.Ignored),
    ];

    /// <summary>Our keys beside the reference's (see docs/training.md).</summary>
    private static readonly string[] OwnKeys =
    [
        "train_data", "output", "init", "teacher", "lpips", "dino", "dino_heads", "save_every", "log_every", "evaluate_every",
        "evaluation", "precision", "device", "keep_checkpoints", "save_safetensors", "shuffle_buffer", "max_pixels", "files_per_partition",
    ];

    private static readonly string[] EvaluationKeys = ["dataset", "metrics", "weights", "text_tower", "precision", "dataset_name", "files_per_partition"];

    /// <summary>Every key a configuration may hold.</summary>
    public static IReadOnlyList<string> KnownKeys { get; } = [.. ReferenceArgs.Select(s => s.Name).Where(n => !OwnKeys.Contains(n)), .. OwnKeys];

    /// <summary>Relative paths in the file are relative to this folder (the file's own), when given.</summary>
    public static TrainConfig Parse(string json, string? baseFolder = null)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"the configuration is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new ArgumentException("the configuration must be a JSON object of settings");
            return new Parser(document.RootElement, baseFolder).Build();
        }
    }

    /// <summary>
    /// <see cref="Args"/> as a JSON object, floats always written with a decimal point or exponent (as Python prints them)
    /// so that a float argument stays a float in the checkpoints that carry it.
    /// </summary>
    public static string ArgsToJson(IReadOnlyDictionary<string, object?> args)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var (key, value) in args)
            {
                json.WritePropertyName(key);
                switch (value)
                {
                    case null:
                        json.WriteNullValue();
                        break;
                    case bool flag:
                        json.WriteBooleanValue(flag);
                        break;
                    case long or int:
                        json.WriteNumberValue(Convert.ToInt64(value, CultureInfo.InvariantCulture));
                        break;
                    case double real:
                        var text = real.ToString("R", CultureInfo.InvariantCulture);
                        json.WriteRawValue(text.Contains('.') || text.Contains('E') ? text : text + ".0");
                        break;
                    default:
                        json.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture));
                        break;
                }
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The nearest known name to <paramref name="key"/> when it is close enough to be a typo.</summary>
    internal static string? Nearest(string key, IEnumerable<string> known)
    {
        var best = known.Select(name => (Name: name, Distance: Distance(key.ToLowerInvariant(), name))).MinBy(c => c.Distance);
        return best.Name is not null && best.Distance <= Math.Max(2, key.Length / 3) ? best.Name : null;
    }

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            previous = current;
        }
        return previous[b.Length];
    }

    /// <summary>One pass over the file that collects every problem before failing.</summary>
    private sealed class Parser(JsonElement root, string? baseFolder)
    {
        private readonly List<string> problems = [];
        private readonly List<string> ignored = [];
        private readonly Dictionary<string, JsonElement> values = root.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);

        public TrainConfig Build()
        {
            foreach (var key in values.Keys.Where(k => !KnownKeys.Contains(k)))
                problems.Add(Nearest(key, KnownKeys) is { } near ? $"unknown key '{key}' (did you mean '{near}'?)" : $"unknown key '{key}'");

            var args = new Dictionary<string, object?>();
            foreach (var spec in ReferenceArgs)
            {
                var value = values.TryGetValue(spec.Name, out var element) ? Read(spec.Name, element, spec.Kind) : spec.Default;
                if (values.ContainsKey(spec.Name))
                {
                    if (spec.Use == Use.Ignored) ignored.Add(spec.Name);
                    if (spec.Use == Use.Fixed && !Equals(value, spec.Default))
                        problems.Add($"{spec.Name} = {Show(value)} is not supported ({spec.Reason}); leave it at {Show(spec.Default)}");
                }
                args[spec.Name] = value;
            }

            var teacher = Location("teacher", "model", required: true);
            var output = Location("output", "output_dir", required: true);
            var lpips = Location("lpips", "lpips_path", required: false);
            var dino = Location("dino", "dino_path", required: true);
            var init = Own("init", Kind.TextOrNull) is string initText ? Resolve(initText) : null;
            var trainData = TrainData();

            var precision = Own("precision", Kind.TextOrNull) as string;
            var bf16 = (bool)args["bf16"]!;
            if (precision is not null && precision is not (Float32 or BFloat16))
                problems.Add($"precision must be {BFloat16} or {Float32}, got '{precision}'");
            else if (precision is not null && values.ContainsKey("bf16") && (precision == BFloat16) != bf16)
                problems.Add($"precision {precision} contradicts bf16 = {bf16.ToString().ToLowerInvariant()}; give one of them");
            precision ??= bf16 ? BFloat16 : Float32;
            args["bf16"] = precision == BFloat16;

            if ((double)args["lp"]! > 0 && lpips is null)
                problems.Add("lp > 0 weights the LPIPS loss: name its weights with lpips (lpips_with_vgg.pth), or set lp to 0");
            CheckRanges(args);

            var localBatch = (long)args["local_bs"]!;
            var globalBatch = (long)args["global_bs"]!;
            var accumulation = (long)args["grad_accu"]!;
            if (localBatch == 0 && globalBatch > 0)
                localBatch = Math.Max(1, (long)Math.Round((double)globalBatch / Math.Max(1, accumulation))); // the reference's rule, one process
            if (localBatch < 1) problems.Add("local_bs (or global_bs) must give at least one image per iteration");
            args["local_bs"] = localBatch;
            args["global_bs"] = localBatch;

            var evaluation = Evaluation();
            var saveEvery = Positive("save_every");
            var evaluateEvery = Positive("evaluate_every");
            if (evaluateEvery is { } every && evaluation is null) problems.Add("evaluate_every is set but evaluation (what to measure) is not");
            if (evaluateEvery is { } e && saveEvery is { } s && e % s != 0)
                problems.Add($"evaluate_every {e} must be a multiple of save_every {s}: evaluations read checkpoints");
            var device = Own("device", Kind.TextOrNull) as string ?? "auto";
            if (device is not ("auto" or "cpu" or "cuda") && !device.StartsWith("cuda:", StringComparison.Ordinal))
                problems.Add($"device must be auto, cpu, cuda or cuda:N, got '{device}'");

            if (problems.Count > 0)
                throw new ArgumentException($"the training configuration has {problems.Count} problem{(problems.Count == 1 ? "" : "s")}: " + string.Join("; ", problems));

            args["model"] = teacher;
            args["output_dir"] = output;
            args["lpips_path"] = lpips;
            args["dino_path"] = dino;
            args["train_data"] = string.Join(",", trainData!);
            return new TrainConfig(args, trainData!, output!, init, teacher!, lpips, dino!,
                DinoHeads: (int?)(Own("dino_heads", Kind.IntOrNull) as long?),
                TrainNumSamples: args["train_num_samples"] as long?,
                LocalBatch: (int)localBatch,
                SaveEvery: saveEvery,
                LogEvery: Positive("log_every") ?? 50,
                EvaluateEvery: evaluateEvery,
                Evaluation: evaluation,
                Precision: precision,
                Seed: args["seed"] as long?,
                Device: device,
                KeepCheckpoints: (int)(Own("keep_checkpoints", Kind.IntOrNull) as long? ?? 0),
                SaveSafetensors: Own("save_safetensors", Kind.Bool) as bool? ?? true,
                TensorBoard: (bool)args["use_tensorboard"]!,
                ShuffleBuffer: Positive("shuffle_buffer") ?? 1000,
                MaxPixels: Own("max_pixels", Kind.IntOrNull) as long? ?? 89_478_485,
                FilesPerPartition: Positive("files_per_partition") ?? 1000,
                Ignored: ignored,
                Given: values.Keys.ToHashSet());
        }

        private void CheckRanges(Dictionary<string, object?> args)
        {
            foreach (var name in new[] { "lr", "wd", "disc_lr", "disc_wd", "grad_clip", "l1", "l2", "lp", "ld", "llecam", "le", "lq", "ldistill", "bcr", "warmup_ep", "disc_warmup_ep", "disc_start_ep", "vq_beta", "e_temp" })
                if (args[name] is double v && (!(v >= 0) || double.IsInfinity(v))) problems.Add($"{name} must be a finite number >= 0, got {Show(v)}");
            foreach (var name in new[] { "warmup_ep", "disc_warmup_ep", "e_temp", "optim_eps" })
                if (args[name] is double v && v <= 0) problems.Add($"{name} must be positive (the reference divides by it), got {Show(v)}");
            foreach (var name in new[] { "epoch", "grad_accu", "num_latent_tokens", "vocab_size", "vocab_width", "num_codebooks", "decoder_rec_depth",
                         "decoder_rec_num_heads", "decoder_rec_hidden_size", "decoder_rec_intermediate_size", "eval_per_epoch" })
                if (args[name] is long n && n < 1) problems.Add($"{name} must be at least 1, got {n}");
            foreach (var name in new[] { "disc_aug_prob", "bcr_cut" })
                if (args[name] is double v && v is < 0 or > 1) problems.Add($"{name} must be in [0, 1], got {Show(v)}");
            foreach (var name in new[] { "lr_start_ratio", "lr_end_ratio", "disc_lr_end_ratio" })
                if (args[name] is double v && v is < 0 or > 1) problems.Add($"{name} must be in [0, 1], got {Show(v)}");
            if (args["vocab_size"] is long vocab && args["num_codebooks"] is long books && books > 0 && vocab % books != 0)
                problems.Add($"vocab_size {vocab} must be a multiple of num_codebooks {books}");
            if (args["vocab_width"] is long width && args["num_codebooks"] is long books2 && books2 > 0 && width % books2 != 0)
                problems.Add($"vocab_width {width} must be a multiple of num_codebooks {books2}");
            if (args["dino_kernel_size"] is long kernel && (kernel < 1 || kernel % 2 == 0)) problems.Add($"dino_kernel_size must be odd and positive, got {kernel}");
            if (args["disc_init"] is double init && init >= 0) problems.Add($"disc_init {Show(init)} asks for trunc-normal head weights; the trainer implements the reference's xavier-normal (disc_init < 0)");
            if (args["dcrit"] is string dcrit && dcrit is not ("hg" or "hinge" or "sp" or "softplus" or "ln" or "lin" or "linear"))
                problems.Add($"dcrit must be hg, sp or ln, got '{dcrit}'");
            if (args["gada"] is long gada && gada % 10 is < 0 or > 4) problems.Add($"gada must pick a bound 0 to 4 (mod 10), got {gada}");
            foreach (var name in new[] { "optim_beta", "disc_optim_beta" })
            {
                var parts = (args[name] as string ?? "").Split('_');
                if (parts.Length != 2 || !parts.All(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var b) && b is >= 0 and < 1))
                    problems.Add($"{name} must look like '0.9_0.95' (two betas in [0, 1)), got '{args[name]}'");
            }
            if (args["seed"] is long seed && seed < 0) problems.Add($"seed must be >= 0, got {seed}");
            if (args["train_num_samples"] is long samples && samples < 1) problems.Add($"train_num_samples must be at least 1, got {samples}");
            if (args["img_size"] is long size && size < 8) problems.Add($"img_size must be at least 8, got {size}");
        }

        private IReadOnlyList<string>? TrainData()
        {
            if (!values.TryGetValue("train_data", out var element))
            {
                problems.Add("train_data (the corpus: a folder, an ImageFolder or WebDataset tars, local or blob; or a list of them) is required");
                return null;
            }
            var locations = element.ValueKind switch
            {
                JsonValueKind.String => [element.GetString()!],
                JsonValueKind.Array when element.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => element.EnumerateArray().Select(e => e.GetString()!).ToList(),
                _ => null,
            };
            if (locations is null || locations.Count == 0 || locations.Any(string.IsNullOrWhiteSpace))
            {
                problems.Add("train_data must be a location or a non-empty list of locations");
                return null;
            }
            foreach (var location in locations.Where(l => l.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || l.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)))
                problems.Add($"train_data '{location}' is the reference's dataset list; give the folders or blob prefixes of its tars instead (and train_num_samples)");
            return locations.Select(Resolve).ToList();
        }

        private EvaluationTemplate? Evaluation()
        {
            if (!values.TryGetValue("evaluation", out var element) || element.ValueKind == JsonValueKind.Null) return null;
            if (element.ValueKind != JsonValueKind.Object)
            {
                problems.Add("evaluation must be an object: {\"dataset\": ..., \"metrics\": \"rfid,psnr,...\", \"weights\": ...}");
                return null;
            }
            var fields = element.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
            foreach (var key in fields.Keys.Where(k => !EvaluationKeys.Contains(k)))
                problems.Add(Nearest(key, EvaluationKeys) is { } near ? $"unknown key 'evaluation.{key}' (did you mean '{near}'?)" : $"unknown key 'evaluation.{key}'");
            string? Text(string key) => fields.TryGetValue(key, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString()
                : v.ValueKind == JsonValueKind.Null ? null : Wrong($"evaluation.{key} must be a string") : null;
            var dataset = Text("dataset");
            if (dataset is null) problems.Add("evaluation.dataset is required");
            IReadOnlyList<string> metrics = [];
            var metricText = fields.TryGetValue("metrics", out var m) ? m.ValueKind switch
            {
                JsonValueKind.String => m.GetString(),
                JsonValueKind.Array => string.Join(",", m.EnumerateArray().Select(x => x.ToString())),
                _ => null,
            } : string.Join(",", EvaluationMetrics.All.Where(x => x != EvaluationMetrics.ZeroShot));
            try
            {
                metrics = EvaluationMetrics.Parse(metricText ?? "");
            }
            catch (ArgumentException e)
            {
                problems.Add($"evaluation.metrics: {e.Message}");
            }
            var precision = Text("precision") ?? EvaluationPrecision.Float32;
            if (!EvaluationPrecision.All.Contains(precision)) problems.Add($"evaluation.precision must be {string.Join(" or ", EvaluationPrecision.All)}, got '{precision}'");
            var filesPerPartition = fields.TryGetValue("files_per_partition", out var f) ? f.TryGetInt32(out var n) && n > 0 ? n : Wrong<int>("evaluation.files_per_partition must be a positive integer") : 1000;
            return dataset is null ? null : new EvaluationTemplate(Resolve(dataset), metrics, Text("weights") is { } w ? Resolve(w) : null,
                Text("text_tower") is { } t ? Resolve(t) : null, precision, Text("dataset_name"), filesPerPartition);
        }

        /// <summary>One of our location keys, or its reference alias; both given must agree.</summary>
        private string? Location(string own, string reference, bool required)
        {
            var ours = Own(own, Kind.TextOrNull) as string;
            var theirs = values.TryGetValue(reference, out var element) && element.ValueKind == JsonValueKind.String ? element.GetString() : null;
            if (ours is not null && theirs is not null && ours != theirs)
                problems.Add($"{own} '{ours}' and the reference's {reference} '{theirs}' disagree; give one of them");
            var value = ours ?? theirs;
            if (value is null && required) problems.Add($"{own} (or the reference's {reference}) is required");
            return value is null ? null : Resolve(value);
        }

        private int? Positive(string key)
        {
            var value = Own(key, Kind.IntOrNull) as long?;
            if (value is < 1) problems.Add($"{key} must be at least 1, got {value}");
            return value is null or < 1 ? null : (int)Math.Min(value.Value, int.MaxValue);
        }

        private object? Own(string key, Kind kind) => values.TryGetValue(key, out var element) ? Read(key, element, kind) : null;

        private object? Read(string key, JsonElement element, Kind kind)
        {
            switch (kind)
            {
                case Kind.Int or Kind.IntOrNull when element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out var integer):
                    return integer;
                case Kind.Real or Kind.RealOrNull when element.ValueKind == JsonValueKind.Number:
                    return element.GetDouble();
                case Kind.Bool when element.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    return element.GetBoolean();
                case Kind.Text or Kind.TextOrNull when element.ValueKind == JsonValueKind.String:
                    return element.GetString();
                case Kind.TextOrNull or Kind.IntOrNull or Kind.RealOrNull when element.ValueKind == JsonValueKind.Null:
                    return null;
            }
            var expected = kind switch
            {
                Kind.Int => "an integer",
                Kind.IntOrNull => "an integer or null",
                Kind.Real => "a number",
                Kind.RealOrNull => "a number or null",
                Kind.Bool => "true or false",
                Kind.Text => "a string",
                _ => "a string or null",
            };
            problems.Add($"{key} must be {expected}, got {element.GetRawText()}");
            return ReferenceArgs.FirstOrDefault(s => s.Name == key)?.Default;
        }

        private string? Wrong(string problem)
        {
            problems.Add(problem);
            return null;
        }

        private T Wrong<T>(string problem)
        {
            problems.Add(problem);
            return default!;
        }

        /// <summary>Local relative paths are relative to the configuration file's folder; blob locations stay as they are.</summary>
        private string Resolve(string location) =>
            baseFolder is null || Data.Corpus.FileStores.IsBlobLocation(location) || Path.IsPathRooted(location)
                ? location
                : Path.GetFullPath(Path.Combine(baseFolder, location));

        private static string Show(object? value) => value switch
        {
            null => "null",
            bool b => b ? "true" : "false",
            string s => $"'{s}'",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
    }
}
