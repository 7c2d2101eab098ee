using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.Jobs.Tests.Schedules;

public sealed class TrendAndDefinitionTests
{
    private static readonly DateTimeOffset Start = new(2026, 6, 1, 3, 0, 0, TimeSpan.Zero);

    private static EvaluationRecord Evaluation(int day, int? epoch, long? iteration, double rfid, string protocol = "p1") => new()
    {
        JobId = Guid.CreateVersion7(Start.AddDays(day)), CreatedAt = Start.AddDays(day), TrainingEpoch = epoch, TrainingIteration = iteration,
        DatasetName = "val", Protocol = protocol, Metrics = new Dictionary<string, double> { ["rfid"] = rfid, ["psnr"] = 20 + day },
    };

    [Fact]
    public void Sparkline_SpansMinimumToMaximum_WithGapsForMissingValues() =>
        Assert.Equal("▁█ ▅", Trend.Sparkline([1.0, 3.0, null, 2.2]));

    [Fact]
    public void Sparkline_OfAFlatSeries_IsMidHeight() => Assert.Equal("▄▄▄", Trend.Sparkline([2.0, 2.0, 2.0]));

    [Fact]
    public void Series_ByIteration_OrdersByTrainingPositionAndSeparatesProtocols()
    {
        var series = Trend.Series([Evaluation(0, 0, 200, 1.0), Evaluation(1, 0, 100, 1.5), Evaluation(2, null, null, 0.9), Evaluation(3, 1, 50, 0.8, "p2")],
            TrendOrder.Iteration);

        Assert.Equal(["p2", "p1"], series.Select(s => s.Protocol)); // the newest evaluation's series first
        Assert.Equal([1.5, 1.0, 0.9], series[1].Values("rfid"));
        Assert.Equal(["rfid", "psnr"], series[1].Metrics);
        Assert.Equal(0.9, Trend.Best(series[1], "rfid")!.Value.Value);
    }

    [Fact]
    public void Series_ByTime_OrdersByEvaluationTime() =>
        Assert.Equal([1.0, 1.5], Trend.Series([Evaluation(1, 0, 100, 1.5), Evaluation(0, 0, 200, 1.0)], TrendOrder.Time).Single().Values("rfid"));

    [Fact]
    public void OutputFor_NamesTheFolderBySlotAndCheckpoint()
    {
        var local = new ScheduledEvaluation("/data/val", "/evals/nightly", ["rfid"], ModelChoice.Detect, null, null, "fp32", null, null, 1000);
        var blob = local with { Output = "az://evals/nightly/" };

        Assert.Equal("/evals/nightly/20260601-030000-ckpt-ep3-iter5000", local.OutputFor(Start, "/runs/a/ckpt-ep3-iter5000.pth"));
        Assert.Equal("az://evals/nightly/20260601-030000-ckpt-ep3-iter5000", blob.OutputFor(Start, "az://ckpts/a/ckpt-ep3-iter5000.pth"));
    }

    [Fact]
    public void ScheduledEvaluation_RoundTripsThroughJson()
    {
        var evaluation = new ScheduledEvaluation("/data/val", "/evals", ["rfid", "psnr"], new ModelChoice("wintok", "so400m"), "/w", null, "bf16", "val",
            Data.Corpus.CorpusKind.ImageFolder, 50);

        var back = ScheduledEvaluation.FromJson(evaluation.ToJson());

        Assert.Equal(evaluation with { Metrics = [] }, back with { Metrics = [] });
        Assert.Equal(evaluation.Metrics, back.Metrics);
    }

    [Fact]
    public void WebhookHost_ShowsOnlyTheHost() =>
        Assert.Equal("hooks.example.com", ScheduleDefinition.WebhookHost("https://hooks.example.com/services/T000/B000/s3cr3t?token=abc"));

    [Theory]
    [InlineData("nightly", true)]
    [InlineData("run-7.fp32_eval", true)]
    [InlineData("-nightly", false)]
    [InlineData("night ly", false)]
    [InlineData("", false)]
    public void NameProblem_AcceptsFolderSafeNamesOnly(string name, bool valid) => Assert.Equal(valid, ScheduleDefinition.NameProblem(name) is null);
}
