using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.Jobs.Tests.Schedules;

public sealed class RegressionRulesTests
{
    private static readonly Guid First = Guid.Parse("00000000-0000-0000-0000-000000000001");
    private static readonly Guid Second = Guid.Parse("00000000-0000-0000-0000-000000000002");

    private static EvaluationRecord Evaluation(Guid job, params (string Name, double Value)[] values) =>
        new() { JobId = job, Metrics = values.ToDictionary(v => v.Name, v => v.Value) };

    [Theory]
    [InlineData("lower", 1.06, true)]   // rFID up by more than the allowed 0.05
    [InlineData("lower", 1.05, false)]  // exactly the threshold is tolerated
    [InlineData("lower", 0.50, false)]  // better
    [InlineData("higher", 0.94, true)]  // PSNR-like down by more than 0.05
    [InlineData("higher", 0.95, false)]
    [InlineData("higher", 2.00, false)]
    public void IsRegression_ByDirection_JudgesWorseningBeyondTheThreshold(string direction, double value, bool expected) =>
        Assert.Equal(expected, RegressionRules.IsRegression(value, 1.0, 0.05, direction));

    [Fact]
    public void Find_WithARelativeThreshold_AllowsThatFractionOfTheBaseline()
    {
        var thresholds = MetricThresholds.Parse(["psnr=2%", "rfid=0.1"]);
        var baseline = new Dictionary<string, BaselineValue> { ["psnr"] = new(25.0, First), ["rfid"] = new(1.0, First) };

        var findings = RegressionRules.Find(new Dictionary<string, double> { ["psnr"] = 24.4, ["rfid"] = 1.1 }, baseline, thresholds);

        // 2% of 25 dB is 0.5 dB: 24.4 regressed; rFID rose by exactly its 0.1 and did not.
        var psnr = Assert.Single(findings);
        Assert.Equal(("psnr", 24.4, 25.0, MetricDirection.Higher), (psnr.Metric, psnr.Value, psnr.Baseline.Value, psnr.Direction));
        Assert.Equal(0.5, psnr.Allowed, 12);
    }

    [Fact]
    public void Find_MetricsWithoutBaselineOrValueOrThreshold_AreNotJudged()
    {
        var thresholds = MetricThresholds.Parse(["ssim=off"]);
        var baseline = new Dictionary<string, BaselineValue> { ["rfid"] = new(1.0, First), ["ssim"] = new(0.9, First) };

        var findings = RegressionRules.Find(new Dictionary<string, double> { ["psnr"] = 1.0, ["ssim"] = 0.1, ["rfid"] = double.NaN }, baseline, thresholds);

        Assert.Empty(findings);
    }

    [Fact]
    public void BestSoFar_TakesTheLowestWhereLowerIsBetterAndTheHighestWhereHigherIs()
    {
        var thresholds = MetricThresholds.Defaults;
        var best = RegressionRules.BestSoFar([Evaluation(First, ("rfid", 1.2), ("psnr", 24.0)), Evaluation(Second, ("rfid", 1.5), ("psnr", 25.0))], thresholds);

        Assert.Equal(new BaselineValue(1.2, First), best["rfid"]);
        Assert.Equal(new BaselineValue(25.0, Second), best["psnr"]);
    }

    [Fact]
    public void Thresholds_Parse_OverridesDefaultsAndSaysWhatIsWrong()
    {
        var thresholds = MetricThresholds.Parse(["rfid=0.2", "usage_percent=5%", "lpips_vgg=off"]).ToDictionary(t => t.Metric);

        Assert.Equal(new MetricThreshold("rfid", 0.2, false, MetricDirection.Lower), thresholds["rfid"]);
        Assert.Equal(new MetricThreshold("usage_percent", 0.05, true, MetricDirection.Higher), thresholds["usage_percent"]);
        Assert.False(thresholds.ContainsKey("lpips_vgg"));
        Assert.True(thresholds.ContainsKey("psnr"));
        Assert.Contains("unknown metric 'fid'", Assert.Throws<ArgumentException>(() => MetricThresholds.Parse(["fid=1"])).Message, StringComparison.Ordinal);
        Assert.Contains("non-negative", Assert.Throws<ArgumentException>(() => MetricThresholds.Parse(["rfid=-1"])).Message, StringComparison.Ordinal);
        Assert.Contains("NAME=VALUE", Assert.Throws<ArgumentException>(() => MetricThresholds.Parse(["rfid"])).Message, StringComparison.Ordinal);
    }
}
