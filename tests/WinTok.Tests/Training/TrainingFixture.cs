using System.Text.Json;
using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.Model;
using WinTok.Tests.Evaluation;
using WinTok.TestSupport;
using WinTok.Training;
using static TorchSharp.torch;

namespace WinTok.Tests.Training;

/// <summary>
/// One training fixture folder (tests/fixtures/training, or the folder <c>WINTOK_TRAINING_FIXTURES</c> names; its
/// README explains every file): the tiny configuration, the initial weights, the batches, the recorded random draws
/// and what the reference computed. Shapes all come from config.json, so another configuration passes unchanged.
/// </summary>
internal sealed class TrainingFixture
{
    private TrainingFixture(string folder)
    {
        Folder = folder;
        Config = ArgsJson.Deserialize(File.ReadAllText(Path.Combine(folder, "config.json")));
        Args = Dictionary(Config, "args_used");
        Encoder = ReferenceArgs.EncoderFromHfConfig(Dictionary(Config, "encoder_config"));
        Records = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "records.json"))).RootElement;
        var batches = Safetensors.Read(Path.Combine(folder, "batches.safetensors")).Tensors;
        Images = batches["images"];
        BatchIndices = batches["batch_indices"];
        Recorded = Safetensors.Read(Path.Combine(folder, "records.safetensors")).Tensors;
        Probes = Safetensors.Read(Path.Combine(folder, "probes.safetensors")).Tensors;
        var discriminator = Dictionary(Config, "discriminator");
        var arch = Dictionary(discriminator, "backbone_arch");
        Dino = new DinoConfig(
            EmbedDim: Int(arch, "embed_dim"), Depth: Int(arch, "depth"), Heads: Int(arch, "num_heads"), MlpRatio: Real(arch, "mlp_ratio"),
            PatchSize: Int(arch, "patch_size"), ImageSize: Int(arch, "img_size"), InterpolateOffset: Real(arch, "interpolate_offset"),
            LayerNormEps: Real(arch, "layernorm_eps"));
        var norm = (string)discriminator["norm"]!;
        if (norm != "gn") throw new NotSupportedException($"The fixture's discriminator norm is '{norm}'; the port implements the reference's 'gn'");
        DiscriminatorConfig = new DiscriminatorConfig(
            List(discriminator, "key_depths").Select(v => (int)(long)v!).ToArray(),
            KernelSize: Int(discriminator, "kernel_size"), InitGain: -Real(Args, "disc_init"));
        Iterations = Int(Config, "iterations");
    }

    public string Folder { get; }
    public string Name => Path.GetFileName(Folder.TrimEnd(Path.DirectorySeparatorChar));
    public IReadOnlyDictionary<string, object?> Config { get; }
    public IReadOnlyDictionary<string, object?> Args { get; }
    public EncoderShape Encoder { get; }
    public DinoConfig Dino { get; }
    public DiscriminatorConfig DiscriminatorConfig { get; }
    public int Iterations { get; }
    public JsonElement Records { get; }
    public Tensor Images { get; }
    public Tensor BatchIndices { get; }
    public IReadOnlyDictionary<string, Tensor> Recorded { get; }
    public IReadOnlyDictionary<string, Tensor> Probes { get; }

    private static readonly Dictionary<string, Lazy<TrainingFixture>> Cache = new();

    public static TrainingFixture Get(string folder)
    {
        Lazy<TrainingFixture> lazy;
        lock (Cache)
        {
            if (!Cache.TryGetValue(folder, out lazy!)) Cache[folder] = lazy = new Lazy<TrainingFixture>(() => new TrainingFixture(folder));
        }
        return lazy.Value;
    }

    /// <summary>tests/fixtures/training and, when set, the folder named by <c>WINTOK_TRAINING_FIXTURES</c>.</summary>
    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (var folder in TestFixtures.WithExtra("training", "WINTOK_TRAINING_FIXTURES")) data.Add(folder);
        return data;
    }

    /// <summary>The batch of global iteration <paramref name="iteration"/>.</summary>
    public Tensor Batch(int iteration) => Images.index_select(0, BatchIndices[iteration]);

    public WinTokModel LoadGenerator() =>
        WinTokCheckpoint.Load(Path.Combine(Folder, "init_generator.safetensors"), Encoder, Dictionary(Config, "args")).Model;

    public SiglipTeacher LoadTeacher() => SiglipTeacher.Load(Path.Combine(Folder, "teacher.safetensors"), Encoder);

    /// <summary>The DINOv2 backbone with the README's formula weights, each tensor checked against config.json's table.</summary>
    public DinoVisionTransformer BuildBackbone()
    {
        var table = List(Dictionary(Config, "discriminator"), "backbone_params");
        var weights = new Dictionary<string, Tensor>();
        for (var k = 0; k < table.Count; k++)
        {
            var row = (IReadOnlyList<object?>)table[k]!;
            var name = (string)row[0]!;
            var shape = ((IReadOnlyList<object?>)row[1]!).Select(v => (long)v!).ToArray();
            var rule = (string)row[3]!;
            var values = FormulaWeights.Values(shape, k, rule);
            TableFormulaWeights.AssertDigest(name, values, Number(row[4]), Number(row[5]), Number(row[6]));
            weights[name] = tensor(values).reshape(shape);
        }
        try
        {
            return DinoVisionTransformer.FromStateDict(weights, Dino);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>The training LPIPS with the README's formula weights (the metrics fixture's), checked against config.json's table.</summary>
    public Lpips BuildLpips()
    {
        var table = List(Dictionary(Config, "lpips"), "params").Cast<IReadOnlyList<object?>>().ToList();
        var specs = table.Select(row => new TensorSpec((string)row[0]!, ((IReadOnlyList<object?>)row[1]!).Select(v => (long)v!).ToArray(), (string)row[2]!)).ToList();
        var weights = FormulaStateDict.Generate(specs);
        try
        {
            foreach (var row in table)
                TableFormulaWeights.AssertDigest((string)row[0]!, weights[(string)row[0]!].data<float>().ToArray(), Number(row[3]), Number(row[4]), Number(row[5]));
            return Lpips.FromTensors(weights, "formula weights of " + Name);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    public DinoDiscriminator LoadDiscriminator()
    {
        var discriminator = new DinoDiscriminator(BuildBackbone(), DiscriminatorConfig);
        using var heads = CheckpointFile.Read(Path.Combine(Folder, "init_discriminator.safetensors"));
        heads.LoadInto(discriminator);
        return discriminator;
    }

    /// <summary>The reference's options for this run (fp32, as the fixture was made).</summary>
    public TrainingOptions Options()
    {
        var schedule = Dictionary(Config, "schedule");
        return TrainingOptions.FromReferenceArgs(Args, (long)schedule["num_batches"]!);
    }

    /// <summary>steps[i] of records.json.</summary>
    public JsonElement Step(int iteration) => Records.GetProperty("steps")[iteration];

    public static IReadOnlyDictionary<string, object?> Dictionary(IReadOnlyDictionary<string, object?> parent, string key) =>
        (IReadOnlyDictionary<string, object?>)parent[key]!;

    public static IReadOnlyList<object?> List(IReadOnlyDictionary<string, object?> parent, string key) =>
        (IReadOnlyList<object?>)parent[key]!;

    private static int Int(IReadOnlyDictionary<string, object?> d, string key) => checked((int)(long)d[key]!);

    private static double Real(IReadOnlyDictionary<string, object?> d, string key) => Number(d[key]);

    public static double Number(object? value) => value switch
    {
        long l => l,
        double x => x,
        var other => throw new InvalidDataException($"Not a number: {other}"),
    };
}

/// <summary>The formula weights (<see cref="FormulaWeights"/>) checked against the digests config.json's tables give.</summary>
internal static class TableFormulaWeights
{
    public static void AssertDigest(string name, float[] values, double sum, double absSum, double squares)
    {
        double s = 0, a = 0, q = 0;
        foreach (var v in values)
        {
            s += v;
            a += Math.Abs(v);
            q += (double)v * v;
        }
        Assert.True(Math.Abs(a - absSum) <= 1e-9 * absSum && Math.Abs(q - squares) <= 1e-9 * squares && Math.Abs(s - sum) <= 1e-9 * absSum,
            $"Formula weights of {name} differ from the fixture's table: sum {s} vs {sum}, |sum| {a} vs {absSum}, squares {q} vs {squares}");
    }
}

/// <summary>
/// Replays the reference's recorded draws (records.safetensors <c>it{II}.call{k}.*</c>) in the order the reference
/// consumed them, and fails when the port asks for a draw of another kind or leaves draws unused.
/// </summary>
internal sealed class ReplayRandomness(IReadOnlyDictionary<string, Tensor> recorded) : ITrainingRandomness
{
    private readonly Queue<(string Kind, string Key, object Value)> draws = new();
    private int iteration = -1;

    /// <summary>Loads iteration <paramref name="next"/>'s draws after checking the previous iteration used all of its own.</summary>
    public void Expect(int next)
    {
        AssertConsumed();
        iteration = next;
        for (var call = 0; recorded.ContainsKey($"it{next:00}.call{call}.aug_flags_rand"); call++)
        {
            var prefix = $"it{next:00}.call{call}.";
            draws.Enqueue(("switches", prefix + "aug_flags_rand", recorded[prefix + "aug_flags_rand"]));
            draws.Enqueue(("uniforms", prefix + "aug_rand01", recorded[prefix + "aug_rand01"]));
            draws.Enqueue(("coin", prefix + "coin", recorded[prefix + "coin"].item<double>()));
            if (recorded.TryGetValue(prefix + "crop_top_left", out var crop))
                draws.Enqueue(("crop", prefix + "crop_top_left", (crop[0].item<long>(), crop[1].item<long>())));
        }
    }

    /// <summary>Queues one draw of each kind, for probes outside the training loop.</summary>
    public void Queue(string kind, object value) => draws.Enqueue((kind, "probe", value));

    public void AssertConsumed() =>
        Assert.True(draws.Count == 0, $"Iteration {iteration}: {draws.Count} recorded draws were not used, next {(draws.Count > 0 ? draws.Peek().Key : "")}");

    public Tensor AugmentationSwitches() => ((Tensor)Next("switches")).clone();

    public Tensor AugmentationUniforms(long batch, Device device)
    {
        var uniforms = (Tensor)Next("uniforms");
        Assert.Equal(batch, uniforms.shape[1]);
        return uniforms.to(device).clone();
    }

    public double ResizeCoin() => (double)Next("coin");

    public (long Top, long Left) CropOffset(long topRange, long leftRange)
    {
        var (top, left) = ((long, long))Next("crop");
        Assert.InRange(top, 0, topRange - 1);
        Assert.InRange(left, 0, leftRange - 1);
        return (top, left);
    }

    private object Next(string kind)
    {
        Assert.True(draws.Count > 0, $"Iteration {iteration}: the port asked for a {kind} draw the reference never made");
        var (recordedKind, key, value) = draws.Dequeue();
        Assert.True(recordedKind == kind, $"Iteration {iteration}: the port asked for a {kind} draw where the reference drew {recordedKind} ({key})");
        return value;
    }
}
