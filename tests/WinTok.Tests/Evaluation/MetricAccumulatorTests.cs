using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.TestSupport;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>
/// The evaluation job's path: networks, per-batch accumulation in partitions, serialised partials, merge, summary;
/// checked against the metrics fixture's per-image reference values.
/// </summary>
public sealed class MetricAccumulatorTests
{
    private const double Tolerance = 1e-5;

    // Two uneven partitions, one with a partial batch, few enough images for a quick CPU run.
    private const int Images = 3;

    public static TheoryData<string> Sets() => MetricsFixtureSet.Sets("lpips_vgg", MetricsFixtureSet.MetricsFolders());

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_PartitionsMergedFromBytes_GiveTheReferenceMeansAndPerImageValues(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        using var networks = new EvaluationNetworks(null, [Lpips.FromTensors(FormulaStateDict.Generate(set.Specs("lpips_weights")), "formula weights")], CPU);
        var images = set.Images().narrow(0, 0, Images);
        var reconstructions = set.Reconstructions.narrow(0, 0, Images);
        // Partition 1: one batch of 2; partition 2: one batch of 1. Each goes through its bytes, as between workers.
        var merged = new PartialMetrics();
        var perImagePsnr = new List<double>();
        var perImageLpips = new List<double>();
        foreach (var (start, count) in new[] { (0L, 2L), (2L, 1L) })
        {
            using var accumulator = new MetricAccumulator(networks);
            using var measured = accumulator.AddBatch(images.narrow(0, start, count), reconstructions.narrow(0, start, count));
            perImagePsnr.AddRange(measured.Psnr.data<double>().ToArray());
            perImageLpips.AddRange(measured.Lpips[LpipsVariant.TrainingVgg].data<double>().ToArray());
            merged.Merge(RoundTrip(accumulator.ToPartial()));
        }

        var summary = merged.Summarize();

        double[] psnr = Reference(set, "psnr"), ssim = Reference(set, "ssim"), lpips = Reference(set, "lpips_vgg");
        Assert.Equal(Images, summary.Images);
        AssertRelative(psnr, [.. perImagePsnr], "per-image PSNR");
        AssertRelative(lpips, [.. perImageLpips], "per-image LPIPS");
        AssertRelative([psnr.Average()], [summary.PsnrPerImage], "PSNR per-image mean");
        AssertRelative([ssim.Average()], [summary.SsimPerImage], "SSIM per-image mean");
        AssertRelative([(psnr[..2].Average() + psnr[2]) / 2], [summary.Psnr], "PSNR mean of batch means");
        AssertRelative([(ssim[..2].Average() + ssim[2]) / 2], [summary.Ssim], "SSIM mean of batch means");
        AssertRelative([lpips.Average()], [summary.Lpips[LpipsVariant.TrainingVgg]], "LPIPS mean");
        Assert.Null(summary.Fid);
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void AddBatch_WithTheInception_AccumulatesTheReferencesFeaturesOfImagesAndReconstructions(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        using var networks = new EvaluationNetworks(FidInception.FromTensors(FormulaStateDict.Generate(set.Specs("inception_weights")), "formula weights"), [], CPU);
        using var accumulator = new MetricAccumulator(networks);

        accumulator.AddBatch(set.Images().narrow(0, 0, 2), set.Reconstructions.narrow(0, 0, 2)).Dispose();
        var partial = accumulator.ToPartial();

        AssertSameStatistics(FeatureStatistics.Of(set.Io["inception_images"].narrow(0, 0, 2)), partial.RealFeatures!, "real images");
        AssertSameStatistics(FeatureStatistics.Of(set.Io["inception_reconstructions"].narrow(0, 0, 2)), partial.ReconstructionFeatures!, "reconstructions");
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_Summarize_GivesTheReferenceFidFromAccumulatedOrCachedRealStatistics(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        // The fixture's 16-d feature sets stand in for Inception features, so the eigen decompositions stay small.
        var real = FeatureStatistics.Of(set.Io["fid_a"].narrow(1, 0, 16).to(float64));
        var reconstructed = FeatureStatistics.Of(set.Io["fid_b"].narrow(1, 0, 16).to(float64));
        var noLpips = new Dictionary<LpipsVariant, double>();
        var accumulated = new PartialMetrics(1, 1, QualitySums.Zero, noLpips, real, reconstructed, null);
        var withoutReal = new PartialMetrics(1, 1, QualitySums.Zero, noLpips, null, reconstructed, null);
        double expected = set.Expected.GetProperty("fid_a_b_first16d").GetDouble();

        AssertRelative([expected], [accumulated.Summarize().Fid!.Value], "FID from accumulated real statistics");
        AssertRelative([expected], [withoutReal.Summarize(realStatistics: real).Fid!.Value], "FID from cached real statistics");
        Assert.Null(withoutReal.Summarize().Fid);
    }

    [Fact]
    public void Merge_OfPartitionsThatMeasuredDifferentMetrics_FailsSayingWhat()
    {
        using var scope = NewDisposeScope();
        using var networks = new EvaluationNetworks(null, [], CPU);
        using var counting = new MetricAccumulator(networks, new MetricAccumulatorOptions { Codebooks = new CodebookShape(4, 8) });
        using var plain = new MetricAccumulator(networks);
        var merged = counting.ToPartial();

        var error = Assert.Throws<ArgumentException>(() => merged.Merge(plain.ToPartial()));

        Assert.Contains("codebooks 4 codebooks of 8", error.Message);
        Assert.Contains("codebooks none", error.Message);
    }

    [Fact]
    public void WriteTo_ThenReadFrom_KeepsEveryBitAndATruncatedCopyFails()
    {
        using var scope = NewDisposeScope();
        using var networks = new EvaluationNetworks(null, [], CPU);
        using var accumulator = new MetricAccumulator(networks, new MetricAccumulatorOptions { Codebooks = new CodebookShape(2, 8) });
        var images = rand(2, 3, 16, 16, generator: new Generator(1)) * 2 - 1;
        accumulator.AddBatch(images, images.flip(3)).Dispose();
        accumulator.AddIndices(randint(0, 8, [2, 2, 5], generator: new Generator(2)));

        var bytes = Bytes(accumulator.ToPartial());
        var copy = Bytes(RoundTrip(accumulator.ToPartial()));

        Assert.Equal(bytes, copy);
        var error = Assert.Throws<InvalidDataException>(() => PartialMetrics.ReadFrom(new MemoryStream(bytes[..^3])));
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void AddIndices_WithoutCodebookCounting_FailsSayingHowToTurnItOn()
    {
        using var networks = new EvaluationNetworks(null, [], CPU);
        using var accumulator = new MetricAccumulator(networks);

        var error = Assert.Throws<InvalidOperationException>(() => accumulator.AddIndices(zeros(1, 4, 4, int64)));

        Assert.Contains("Codebooks", error.Message);
    }

    [Fact]
    public void Load_WhenAnLpipsBackboneHasNoHeadFile_FailsNamingTheNetwork()
    {
        var error = Assert.Throws<ArgumentException>(() => EvaluationNetworks.Load(new EvaluationWeightFiles { LpipsVggBackbone = "vgg16-397923af.pth" }, CPU));

        Assert.Contains("LPIPS-vgg needs both", error.Message);
    }

    [Fact]
    public void Load_WhenAFileIsForAnotherNetwork_FailsNamingTheFile()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var scope = NewDisposeScope();
        string alexBackbone = folder.File("alexnet.safetensors");
        Safetensors.Write(alexBackbone, FormulaStateDict.Generate(LpipsTests.TorchvisionFeatures(LpipsVariant.Alex)), new Dictionary<string, string>());
        string alexHeads = TestFixtures.File("lpips-v0.1", "alex.pth");
        string vggHeads = TestFixtures.File("lpips-v0.1", "vgg.pth");

        var files = new EvaluationWeightFiles { LpipsAlexBackbone = alexBackbone, LpipsAlexHeads = alexHeads };
        using (var networks = EvaluationNetworks.Load(files, CPU))
        {
            Assert.Equal([LpipsVariant.Alex], networks.Lpips.Keys);
            Assert.Null(networks.Inception);
        }
        var error = Assert.Throws<WeightFileMismatchException>(() => EvaluationNetworks.Load(files with { LpipsAlexHeads = vggHeads }, CPU));

        Assert.Equal(vggHeads, error.FilePath);
        Assert.Contains("lin1.model.1.weight: module expects [1, 192, 1, 1], checkpoint has [1, 128, 1, 1]", error.Message);
    }

    private static void AssertSameStatistics(FeatureStatistics expected, FeatureStatistics actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        var (mean1, covariance1) = expected.MeanAndCovariance();
        var (mean2, covariance2) = actual.MeanAndCovariance();
        double meanError = (mean1 - mean2).abs().max().item<double>() / mean1.abs().max().item<double>();
        double covarianceError = (covariance1 - covariance2).abs().max().item<double>() / covariance1.abs().max().item<double>();
        Assert.True(meanError <= Tolerance && covarianceError <= Tolerance, $"{what}: mean {meanError:E2}, covariance {covarianceError:E2} from the reference features' statistics");
    }

    private static double[] Reference(MetricsFixtureSet set, string name) =>
        set.Io[name].to(float64).data<double>().ToArray()[..Images];

    private static byte[] Bytes(PartialMetrics partial)
    {
        var stream = new MemoryStream();
        partial.WriteTo(stream);
        return stream.ToArray();
    }

    private static PartialMetrics RoundTrip(PartialMetrics partial) => PartialMetrics.ReadFrom(new MemoryStream(Bytes(partial)));

    private static void AssertRelative(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var relative = expected.Select((e, i) => Math.Abs(actual[i] - e) / Math.Abs(e)).ToArray();
        Assert.True(relative.Max() <= Tolerance, $"{what}: worst relative error {relative.Max():E2}; ours [{string.Join(", ", actual)}], reference [{string.Join(", ", expected)}]");
    }
}
