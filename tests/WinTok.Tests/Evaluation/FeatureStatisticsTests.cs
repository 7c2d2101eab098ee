using WinTok.Evaluation;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>
/// Feature statistics and the Fréchet distance against the reference's numpy/scipy computation (metrics fixture:
/// fid_a, fid_b), and the merging and serialisation that partitions rely on.
/// </summary>
public sealed class FeatureStatisticsTests
{
    // The tolerance for the Fréchet step on given features.
    private const double FrechetTolerance = 1e-6;

    public static TheoryData<string> Sets() => MetricsFixtureSet.Sets("fid_a", MetricsFixtureSet.MetricsFolders());

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_FrechetDistance_OnTheFixturesFeatures_MatchesNumpyCovAndScipySqrtm(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        var a = set.Io["fid_a"].to(float64);
        var b = set.Io["fid_b"].to(float64);

        double all = FrechetDistance.Between(FeatureStatistics.Of(a), FeatureStatistics.Of(b));
        double first16 = FrechetDistance.Between(FeatureStatistics.Of(a.narrow(1, 0, 16)), FeatureStatistics.Of(b.narrow(1, 0, 16)));

        AssertRelative(set.Expected.GetProperty($"fid_a_b_{a.shape[1]}d").GetDouble(), all, FrechetTolerance, $"{set.Name} all {a.shape[1]} dims");
        AssertRelative(set.Expected.GetProperty("fid_a_b_first16d").GetDouble(), first16, FrechetTolerance, $"{set.Name} first 16 dims");
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void MeanAndCovariance_EqualNumpysTwoPassMeanAndCov(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        var features = set.Io["fid_b"].to(float64);

        var (mean, covariance) = FeatureStatistics.Of(features).MeanAndCovariance();

        // np.cov(rowvar=False): centre, then X_cᵀ X_c / (N - 1).
        var expectedMean = features.mean([0]);
        var centred = features - expectedMean;
        var expectedCovariance = centred.t().matmul(centred) / (features.shape[0] - 1);
        Assert.True((mean - expectedMean).abs().max().item<double>() <= 1e-13 * expectedMean.abs().max().item<double>());
        double covarianceError = (covariance - expectedCovariance).abs().max().item<double>() / expectedCovariance.abs().max().item<double>();
        Assert.True(covarianceError <= 1e-13, $"covariance differs from the two-pass one by {covarianceError:E2} of its largest entry");
        Assert.True(covariance.equal(covariance.t()).all().item<bool>(), "the covariance must be exactly symmetric");
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Merge_OfUnevenPartitions_AgreesWithOnePassToRoundOff(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        using var scope = NewDisposeScope();
        var a = set.Io["fid_a"].to(float64);
        var b = FeatureStatistics.Of(set.Io["fid_b"].to(float64));
        var onePass = FeatureStatistics.Of(a);
        // Partitions of 1, 7, 13% and the rest of the rows, each accumulated in batches of 64, merged in order.
        long n = a.shape[0];
        long[] bounds = [0, 1, 8, 8 + n * 13 / 100, n];
        var merged = new FeatureStatistics((int)a.shape[1]);
        for (int p = 0; p + 1 < bounds.Length; p++)
        {
            using var accumulator = new FeatureAccumulator((int)a.shape[1], a.device);
            for (long start = bounds[p]; start < bounds[p + 1]; start += 64)
            {
                accumulator.Add(a.narrow(0, start, Math.Min(64, bounds[p + 1] - start)));
            }
            merged.Merge(accumulator.ToStatistics());
        }

        Assert.Equal(onePass.Count, merged.Count);
        var (mean1, covariance1) = onePass.MeanAndCovariance();
        var (mean2, covariance2) = merged.MeanAndCovariance();
        double meanError = (mean1 - mean2).abs().max().item<double>() / mean1.abs().max().item<double>();
        double covarianceError = (covariance1 - covariance2).abs().max().item<double>() / covariance1.abs().max().item<double>();
        double fidOnePass = FrechetDistance.Between(onePass, b), fidMerged = FrechetDistance.Between(merged, b);
        // float64 sums in another order: not bit-identical, but within a few units of round-off (see FeatureStatistics.cs).
        Assert.True(meanError <= 1e-14 && covarianceError <= 1e-14, $"merged vs one pass: mean {meanError:E2}, covariance {covarianceError:E2}");
        AssertRelative(fidOnePass, fidMerged, 1e-13, "Fréchet distance of merged vs one-pass statistics");
    }

    [Fact]
    public void Merge_OfTwoPartitions_IsTheSameInEitherOrder()
    {
        using var scope = NewDisposeScope();
        var features = randn(300, 32, float64, generator: new Generator(11));
        var first = FeatureStatistics.Of(features.narrow(0, 0, 120));
        var second = FeatureStatistics.Of(features.narrow(0, 120, 180));

        var forward = FeatureStatistics.ReadFrom(Serialized(first));
        forward.Merge(second);
        var backward = FeatureStatistics.ReadFrom(Serialized(second));
        backward.Merge(first);

        Assert.True(forward.BitwiseEquals(backward));
    }

    [Fact]
    public void WriteToThenReadFrom_GivesBitIdenticalStatistics()
    {
        using var scope = NewDisposeScope();
        var statistics = FeatureStatistics.Of(randn(50, 9, float64, generator: new Generator(3)));

        var copy = FeatureStatistics.ReadFrom(Serialized(statistics));

        Assert.True(copy.BitwiseEquals(statistics));
        Assert.Equal(20 + 8 * (9 + 9 * 10 / 2), Serialized(statistics).Length);
    }

    [Fact]
    public void ReadFrom_WhenTheDataIsTruncatedOrForeign_FailsSayingWhat()
    {
        using var scope = NewDisposeScope();
        var bytes = Serialized(FeatureStatistics.Of(randn(10, 4, float64))).ToArray();

        var truncated = Assert.Throws<InvalidDataException>(() => FeatureStatistics.ReadFrom(new MemoryStream(bytes[..^8])));
        bytes[0] = (byte)'X';
        var foreign = Assert.Throws<InvalidDataException>(() => FeatureStatistics.ReadFrom(new MemoryStream(bytes)));

        Assert.Contains("truncated", truncated.Message);
        Assert.Contains("WTFS", foreign.Message);
    }

    [Fact]
    public void Merge_OfAnotherDimension_FailsNamingBoth()
    {
        var error = Assert.Throws<ArgumentException>(() => new FeatureStatistics(2048).Merge(new FeatureStatistics(64)));

        Assert.Contains("64-d features into 2048-d", error.Message);
    }

    [Fact]
    public void FrechetDistance_OfADistributionWithItself_IsZeroToRoundOff()
    {
        using var scope = NewDisposeScope();
        var statistics = FeatureStatistics.Of(randn(400, 16, float64, generator: new Generator(5)) * 3 + 1);

        double distance = FrechetDistance.Between(statistics, statistics);

        Assert.True(Math.Abs(distance) < 1e-10 * 16 * 9, $"d²(P, P) = {distance}");
    }

    [Fact]
    public void MeanAndCovariance_OfOneVector_FailsSayingTwoAreNeeded()
    {
        using var scope = NewDisposeScope();

        var error = Assert.Throws<InvalidOperationException>(() => FeatureStatistics.Of(ones(1, 4)).MeanAndCovariance());

        Assert.Contains("at least 2", error.Message);
    }

    private static MemoryStream Serialized(FeatureStatistics statistics)
    {
        var stream = new MemoryStream();
        statistics.WriteTo(stream);
        stream.Position = 0;
        return stream;
    }

    private static void AssertRelative(double expected, double actual, double tolerance, string what)
    {
        double relative = Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.True(relative <= tolerance, $"{what}: {actual:R} vs {expected:R} (relative {relative:E2}, tolerance {tolerance:E0})");
    }
}
