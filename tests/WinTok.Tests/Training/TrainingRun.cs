using System.Collections.Concurrent;
using TorchSharp;
using WinTok.Model;
using WinTok.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Tests.Training;

/// <summary>[sum, |sum|, sum of squares] in float64, as the fixture digests tensors.</summary>
internal sealed record Digest(double Sum, double AbsSum, double Squares)
{
    public static Digest Of(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var t = tensor.detach().to(ScalarType.Float64);
        return new Digest(t.sum().item<double>(), t.abs().sum().item<double>(), t.square().sum().item<double>());
    }

    /// <summary>
    /// Relative error against <paramref name="expected"/>: |sum| and squares relative to themselves; the signed sum,
    /// which cancels, relative to |sum| (its natural scale).
    /// </summary>
    public double RelativeError(Digest expected)
    {
        static double Rel(double a, double e, double scale) => scale == 0 ? Math.Abs(a - e) : Math.Abs(a - e) / scale;
        return Math.Max(Rel(Sum, expected.Sum, expected.AbsSum),
            Math.Max(Rel(AbsSum, expected.AbsSum, expected.AbsSum), Rel(Squares, expected.Squares, expected.Squares)));
    }
}

/// <summary>A quantizer decision that differs from the reference's, with how close the two codes' cosines were.</summary>
/// <param name="Margin">Our chosen code's cosine minus the reference code's cosine, with our weights at that iteration.</param>
internal sealed record IdFlip(int Iteration, int Codebook, long Row, long Ours, long Reference, double Margin);

/// <summary>
/// What the port computed over a fixture's iterations, with snapshots after the fixture's snapshot steps. A run with
/// <c>perturbed</c> set moves every trainable weight of both models by about one unit in the last place (relative
/// 2^-23, a random sign per value) before every iteration, as if each step had rounded differently, which is what a
/// port on other kernels does: how far that trajectory drifts from the unperturbed one measures how much the
/// reference's own float32 dynamics amplify rounding, the floor under any port's agreement with it.
/// </summary>
internal sealed class TrainingRun
{
    private static readonly ConcurrentDictionary<string, Lazy<TrainingRun>> Cache = new();

    private TrainingRun(TrainingFixture fixture, ScalarType precision, bool perturbed)
    {
        var snapshotSteps = TrainingFixture.List(fixture.Config, "snapshot_steps").Select(v => (int)(long)v!).ToHashSet();
        var whole = TrainingFixture.Dictionary(fixture.Config, "snapshot_whole_tensors");
        var generatorKeys = TrainingFixture.List(whole, "generator").Cast<string>().ToList();
        var discriminatorKeys = TrainingFixture.List(whole, "discriminator").Cast<string>().ToList();

        using var generator = fixture.LoadGenerator();
        using var discriminator = fixture.LoadDiscriminator();
        using var teacher = fixture.LoadTeacher();
        using var lpips = fixture.BuildLpips();
        using var kicks = new Generator(20260601);
        var random = new ReplayRandomness(fixture.Recorded);
        using var trainer = new WinTokTrainer(generator, discriminator, teacher, new LpipsLoss(lpips),
            fixture.Options() with { Precision = precision }, random);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < fixture.Iterations; i++)
        {
            random.Expect(i);
            using var scope = NewDisposeScope();
            if (perturbed)
            {
                PerturbByOneUlp(generator, kicks);
                PerturbByOneUlp(discriminator, kicks);
            }
            else
            {
                Flips.AddRange(DecisionsAgainstReference(fixture, generator, i));
            }
            Results.Add(trainer.TrainStep(fixture.Batch(i), i));
            random.AssertConsumed();
            var step = i + 1;
            if (!snapshotSteps.Contains(step)) continue;
            var generatorState = generator.state_dict();
            var discriminatorState = discriminator.state_dict();
            Snapshots[step] = new Snapshot(
                generatorState.Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => Digest.Of(p.Value)),
                discriminatorState.Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => Digest.Of(p.Value)),
                OptimizerDigests(trainer.GeneratorOptimizer),
                OptimizerDigests(trainer.DiscriminatorOptimizer),
                generatorKeys.ToDictionary(k => k, k => generatorState[k].detach().clone().DetachFromDisposeScope()),
                discriminatorKeys.ToDictionary(k => k, k => discriminatorState[k].detach().clone().DetachFromDisposeScope()));
        }
        Seconds = watch.Elapsed.TotalSeconds;
        FinalGenerator = generator.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone().DetachFromDisposeScope());
        FinalDiscriminator = discriminator.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone().DetachFromDisposeScope());
    }

    public List<TrainStepResult> Results { get; } = [];

    public Dictionary<int, Snapshot> Snapshots { get; } = [];

    public IReadOnlyDictionary<string, Tensor> FinalGenerator { get; }

    public IReadOnlyDictionary<string, Tensor> FinalDiscriminator { get; }

    /// <summary>Quantizer decisions (before each step, with that iteration's weights) that differ from the reference's.</summary>
    public List<IdFlip> Flips { get; } = [];

    public double Seconds { get; }

    public static TrainingRun Get(string folder, ScalarType precision = ScalarType.Float32, bool perturbed = false) =>
        Cache.GetOrAdd($"{folder}|{precision}|{perturbed}",
            _ => new Lazy<TrainingRun>(() => new TrainingRun(TrainingFixture.Get(folder), precision, perturbed))).Value;

    /// <summary>Moves every trainable weight by about one unit in the last place, a random sign per value.</summary>
    private static void PerturbByOneUlp(nn.Module model, Generator kicks)
    {
        using var noGrad = no_grad();
        foreach (var parameter in model.parameters().Where(p => p.requires_grad))
        {
            using var scope = NewDisposeScope();
            var sign = rand(parameter.shape, generator: kicks).gt(0.5).to(ScalarType.Float32).mul(2).sub(1);
            parameter.mul_(sign.mul(Math.Pow(2, -23)).add(1));
        }
    }

    /// <summary>
    /// The quantizer's cosine scores for this iteration's batch with the current weights, compared with the reference's
    /// recorded ids: every differing decision with the cosine margin between the two codes.
    /// </summary>
    private static IEnumerable<IdFlip> DecisionsAgainstReference(TrainingFixture fixture, WinTokModel generator, int iteration)
    {
        var flips = new List<IdFlip>();
        using var noGrad = no_grad();
        var quantProj = (nn.Module<Tensor, Tensor>)generator.named_modules().Single(m => m.name == "quant_proj").module;
        var (pixels, _) = generator.EncodeTokens(fixture.Batch(iteration));
        var features = quantProj.call(pixels.to(ScalarType.Float32));
        var expected = fixture.Recorded[$"it{iteration:00}.indices"]; // (B, K, L)
        var state = generator.state_dict();
        var books = expected.shape[1];
        var chunks = features.split(features.shape[2] / books, -1);
        for (var k = 0; k < books; k++)
        {
            var f = F.normalize(chunks[k].reshape(-1, chunks[k].shape[2]), p: 2, dim: -1);
            var codes = F.normalize(state[$"quantizer.codebooks.{k}.codebook.weight"], p: 2, dim: 1);
            var scores = f.matmul(codes.t());
            var ours = scores.argmax(1);
            var reference = expected[.., k].reshape(-1);
            var differing = ours.ne(reference).nonzero();
            for (var j = 0; j < differing.shape[0]; j++)
            {
                var row = differing[j, 0].item<long>();
                var (mine, theirs) = (ours[row].item<long>(), reference[row].item<long>());
                flips.Add(new IdFlip(iteration, k, row, mine, theirs, scores[row, mine].item<float>() - scores[row, theirs].item<float>()));
            }
        }
        return flips;
    }

    private static Dictionary<string, (double Step, Digest ExpAvg, Digest ExpAvgSq)> OptimizerDigests(AdamW optimizer)
    {
        var state = optimizer.CaptureState();
        try
        {
            return state.ToDictionary(m => m.Key, m => (m.Value.Step, Digest.Of(m.Value.ExpAvg), Digest.Of(m.Value.ExpAvgSq)));
        }
        finally
        {
            foreach (var m in state.Values) m.Dispose();
        }
    }

    internal sealed record Snapshot(
        Dictionary<string, Digest> Generator,
        Dictionary<string, Digest> Discriminator,
        Dictionary<string, (double Step, Digest ExpAvg, Digest ExpAvgSq)> GeneratorOptimizer,
        Dictionary<string, (double Step, Digest ExpAvg, Digest ExpAvgSq)> DiscriminatorOptimizer,
        Dictionary<string, Tensor> GeneratorTensors,
        Dictionary<string, Tensor> DiscriminatorTensors);
}
