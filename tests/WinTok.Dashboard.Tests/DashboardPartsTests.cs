using WinTok.Dashboard.Pages;
using WinTok.Dashboard.Plots;
using WinTok.Dashboard.Security;
using WinTok.Results;

namespace WinTok.Dashboard.Tests;

/// <summary>The dashboard's pure parts: plot geometry, job speed, trends, comparisons and the session value.</summary>
public sealed class DashboardPartsTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Ticks_OfARange_AreRoundStepsInsideIt()
    {
        var ticks = PlotScale.Ticks((0.83, 1.27));

        Assert.Equal([0.9, 1.0, 1.1, 1.2], ticks);
    }

    [Fact]
    public void Range_OfOneValue_IsAWindowAroundIt()
    {
        var (min, max) = PlotScale.Range([27.5]);

        Assert.True(min < 27.5 && max > 27.5);
    }

    [Fact]
    public void Y_OfTheRangeMaximum_IsTheTopOfThePlot()
    {
        Assert.Equal(PlotScale.Top, PlotScale.Y(10, (0, 10)));
        Assert.Equal(PlotScale.Height - PlotScale.Bottom, PlotScale.Y(0, (0, 10)));
    }

    [Fact]
    public void Rates_OfARunningJob_AreItsSpeedSoFarAndTheTimeLeftAtThatSpeed()
    {
        var job = new JobProgress { Status = JobStatus.Running, StartedAt = Start, Items = 1000, ItemsDone = 250 };

        var rates = JobRates.Of(job, Start.AddSeconds(10));

        Assert.Equal(25, rates.ImagesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(30), rates.Eta);
    }

    [Fact]
    public void Rates_OfAFinishedJob_UseItsRunningTimeAndHaveNoEta()
    {
        var job = new JobProgress { Status = JobStatus.Succeeded, StartedAt = Start, FinishedAt = Start.AddSeconds(4), Items = 24, ItemsDone = 24 };

        var rates = JobRates.Of(job, Start.AddHours(1));

        Assert.Equal(6, rates.ImagesPerSecond);
        Assert.Null(rates.Eta);
    }

    [Fact]
    public void Rates_OfAQueuedJob_AreUnknown()
    {
        Assert.Equal(new JobRates(null, null), JobRates.Of(new JobProgress { Status = JobStatus.Queued }, Start));
    }

    [Fact]
    public void Trends_PlotOnePointPerEvaluationOfTheNewestProtocolAndFlagRegressions()
    {
        var evaluations = new[]
        {
            Evaluation(0, "p1", psnr: 20), Evaluation(1, "p2", psnr: 30), Evaluation(2, "p2", psnr: 31), Evaluation(3, "p2", psnr: 29.5),
        };
        var regressed = new HashSet<(Guid, string)> { (evaluations[3].JobId, "psnr") };

        var (plots, note) = Trends.Build(evaluations, regressed, byIteration: false);

        var psnr = Assert.Single(plots, p => p.Metric == "psnr");
        Assert.Equal([30, 31, 29.5], psnr.Points.Select(p => p.Y));
        Assert.Equal([false, false, true], psnr.Points.Select(p => p.Regression));
        Assert.Contains("1 evaluations of other datasets or protocols are left out", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Trends_OverIterations_OrderByIterationAndLeaveOutEvaluationsWithoutOne()
    {
        var evaluations = new[] { Evaluation(0, "p", psnr: 25, iteration: 2000), Evaluation(1, "p", psnr: 24, iteration: 1000), Evaluation(2, "p", psnr: 26) };

        var (plots, note) = Trends.Build(evaluations, new HashSet<(Guid, string)>(), byIteration: true);

        Assert.Equal([1000.0, 2000.0], Assert.Single(plots, p => p.Metric == "psnr").Points.Select(p => p.X));
        Assert.Contains("1 evaluations have no training iteration", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_CallsLowerRfidAndHigherPsnrBetter()
    {
        var a = Evaluation(0, "p", psnr: 25, rfid: 2.0);
        var b = Evaluation(1, "p", psnr: 26, rfid: 2.5);

        var rows = CompareView.Compare(a, b);

        Assert.Equal(["rfid", "psnr"], rows.Select(r => r.Metric));
        Assert.Equal(-1, rows[0].Verdict);
        Assert.Equal(1, rows[1].Verdict);
        Assert.Equal(1.0, rows[1].Delta);
    }

    [Fact]
    public void SessionValue_StandsForTheTokenWithoutContainingIt()
    {
        var token = new ActionToken("hunter2-is-not-a-token");

        var session = token.SessionValue();

        Assert.True(token.IsSession(session));
        Assert.False(new ActionToken("another").IsSession(session));
        Assert.DoesNotContain("hunter2", session, StringComparison.Ordinal);
        Assert.True(token.Matches("hunter2-is-not-a-token"));
        Assert.False(token.Matches("hunter2"));
        Assert.False(new ActionToken(null).Matches(""));
    }

    private static EvaluationRecord Evaluation(int minutes, string protocol, double psnr, double? rfid = null, long? iteration = null) => new()
    {
        JobId = Guid.CreateVersion7(),
        CheckpointSha256 = new string('a', 64),
        DatasetName = "val",
        Protocol = protocol,
        CreatedAt = Start.AddMinutes(minutes),
        TrainingIteration = iteration,
        Metrics = rfid is { } r ? new Dictionary<string, double> { ["psnr"] = psnr, ["rfid"] = r } : new Dictionary<string, double> { ["psnr"] = psnr },
    };
}
