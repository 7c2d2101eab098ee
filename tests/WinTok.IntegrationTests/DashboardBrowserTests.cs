using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenQA.Selenium;
using SkiaSharp;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Results;

namespace WinTok.IntegrationTests;

/// <summary>
/// Issue 14's browser test: a results database filled by a real `wintok tokenize` (with a corrupt image whose name is
/// markup) and by evaluations, served by a real `wintok dashboard`, read by headless Chromium. Screenshots of every page
/// are kept in TestResults/dashboard/.
/// </summary>
public sealed class DashboardBrowserTests : IDisposable
{
    private const string HostileKey = "<img src=x onerror=alert(1)>.jpg";
    private const string Schedule = "nightly-val";
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-dashboard-browser", Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed)
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Dashboard_AfterARealTokenizeAndEvaluations_ShowsTheJobItsFailuresAndTrendsInABrowser()
    {
        DashboardSite.RequireBrowser();
        Directory.CreateDirectory(DashboardSite.ScreenshotFolder); // absent on a fresh clone
        File.Delete(Path.Combine(DashboardSite.ScreenshotFolder, "failure.png"));
        var (jobId, database) = await TokenizeSampleAsync();
        var evaluations = await RecordEvaluationsAsync(database);

        // As a new user after the README's first command: `wintok dashboard`, nothing named, no servers configured; it
        // opens the latest local run's database.
        await using var site = await DashboardSite.StartAsync([], AsNewUser(new Dictionary<string, string> { ["Dashboard__ActionToken"] = "browser-test-token" }),
            withBrowser: true);
        try
        {
            site.Open("/jobs");
            var row = site.Browser.FindElement(By.CssSelector($"tr[data-job='{jobId}']"));
            Assert.Contains("succeeded", row.Text, StringComparison.Ordinal);
            Assert.Contains("tokenize", row.Text, StringComparison.Ordinal);
            site.Screenshot("jobs");
            // Live refresh (our own script, allowed by the page's Content-Security-Policy) swaps in a new <main>.
            var script = (IJavaScriptExecutor)site.Browser;
            script.ExecuteScript("document.getElementById('content').dataset.seen = 'yes'");
            Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(
                script.ExecuteScript("return document.getElementById('content').dataset.seen") is null), TimeSpan.FromSeconds(15)),
                "the jobs page did not refresh itself");

            site.Open($"/jobs/{jobId}");
            var keys = site.Browser.FindElements(By.CssSelector("table.failures td.key")).Select(k => k.Text).ToList();
            Assert.Equal(new[] { "circles/corrupt.jpg", HostileKey }.Order(StringComparer.Ordinal), keys.Order(StringComparer.Ordinal));
            Assert.All(site.Browser.FindElements(By.CssSelector("table.failures td.reason")), reason => Assert.False(string.IsNullOrWhiteSpace(reason.Text)));
            Assert.Empty(site.Browser.FindElements(By.CssSelector("img[src='x']")));
            Assert.False(site.AlertShown(), "the hostile key ran as script");
            Assert.Equal(3, site.Browser.FindElements(By.CssSelector("table.partitions tbody tr")).Count);
            Assert.Equal("2", site.Browser.FindElement(By.Id("failure-count")).Text);
            site.Screenshot("job");

            site.Open($"/evaluations?schedule={Schedule}");
            var psnr = site.Browser.FindElement(By.CssSelector("svg.trend[data-metric='psnr']"));
            Assert.Equal(evaluations.Count, psnr.FindElements(By.CssSelector("circle.point")).Count);
            Assert.Single(psnr.FindElements(By.CssSelector("circle.regression")));
            Assert.Equal(evaluations.Count, site.Browser.FindElements(By.CssSelector("table.evaluations tbody tr")).Count);
            site.Screenshot("evaluations");

            site.Open($"/evaluations?schedule={Schedule}&x=iteration");
            Assert.Equal(evaluations.Count, site.Browser.FindElements(By.CssSelector("svg.trend[data-metric='rfid'] circle.point")).Count);

            site.Open($"/evaluations/{evaluations[^1]}");
            Assert.True(Convert.ToInt64(((IJavaScriptExecutor)site.Browser).ExecuteScript(
                "return document.querySelector('img.grid').naturalWidth"), CultureInfo.InvariantCulture) > 0, "the grid did not load");
            Assert.Single(site.Browser.FindElements(By.CssSelector("table.metrics tr.regression")));
            site.Screenshot("evaluation");

            site.Open($"/evaluations/compare?a={evaluations[^2]}&b={evaluations[^1]}");
            Assert.NotEmpty(site.Browser.FindElements(By.CssSelector("table.compare tr.worse")));
            site.Screenshot("compare");

            site.Open("/workers");
            site.Screenshot("workers");

            using var http = new HttpClient { BaseAddress = site.Address };
            var metrics = await http.GetStringAsync("/metrics", Token);
            Assert.Contains("wintok_jobs{", metrics, StringComparison.Ordinal);
            Assert.Contains("status=\"succeeded\"", metrics, StringComparison.Ordinal);
            Assert.Contains("wintok_evaluation_metric{", metrics, StringComparison.Ordinal);
            Assert.Contains("wintok_evaluation_regressions{", metrics, StringComparison.Ordinal);
        }
        catch (Exception) when (!Token.IsCancellationRequested)
        {
            TestContext.Current.TestOutputHelper?.WriteLine(site.Log);
            site.Screenshot("failure");
            throw;
        }
    }

    [Fact]
    public async Task Dashboard_WithoutUrls_BindsLoopbackOnly()
    {
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("dashboard", ["dashboard", "--help"], new Dictionary<string, string>(), Patience);

        Assert.True(exitCode == 0, log);
        Assert.Contains(stdout, line => line.Contains("default http://127.0.0.1:5080", StringComparison.Ordinal));
    }

    /// <summary>This test's own HOME (its list of local runs is its own) and no servers configured.</summary>
    private Dictionary<string, string> AsNewUser(Dictionary<string, string> environment)
    {
        environment["HOME"] = Path.Combine(folder, "home");
        environment["WINTOK_POSTGRES"] = "";
        environment["WINTOK_RABBITMQ"] = "";
        environment["ResultsDatabase__ConnectionString"] = "";
        return environment;
    }

    /// <summary>`wintok sample` plus a corrupt file named like markup, then `wintok tokenize` on it; returns the job and its database.</summary>
    private async Task<(Guid JobId, string Database)> TokenizeSampleAsync()
    {
        var none = AsNewUser([]);
        var (sampleExit, _, sampleLog) = await WorkerProcess.RunAsync("sample", ["sample", folder], none, Patience);
        Assert.True(sampleExit == 0, sampleLog);
        await File.WriteAllTextAsync(Path.Combine(folder, "images", HostileKey), "not an image", Token);
        var output = Path.Combine(folder, "tokens");
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", Path.Combine(folder, "images"), output, "--checkpoint", Path.Combine(folder, "random-tiny.safetensors"),
             "--files-per-partition", "10", "--device", "cpu"], none, Patience);
        Assert.True(exitCode == 0, $"tokenize exited with {exitCode}:\n{log}");
        return (CliTokenizeTests.JobIdIn(stdout), Path.Combine(output, "_wintok", "results.db"));
    }

    /// <summary>
    /// Four evaluations of one schedule along a training run, the last one a PSNR regression, and a reconstruction grid
    /// for the last. Returns their job ids, oldest first.
    /// </summary>
    /// <remarks>
    /// The dashboard's rendering is under test here, not the evaluation (CliEvaluateTests runs real ones): a trend along
    /// a training run needs that run's checkpoints, which the repository does not ship, so the four are recorded as the
    /// evaluate finisher records them, with realistic values.
    /// </remarks>
    private async Task<IReadOnlyList<Guid>> RecordEvaluationsAsync(string database)
    {
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={database}",
        }, builder => builder.AddResultsStore());
        await host.StartAsync(Token);
        var results = host.Services.GetRequiredService<ResultsRepository>();
        var evaluations = host.Services.GetRequiredService<EvaluationsRepository>();
        var points = new (long Iteration, double Rfid, double Psnr, double Ssim, double Lpips, double Usage)[]
        {
            (10_000, 4.81, 22.93, 0.6412, 0.2104, 91.2), (20_000, 2.97, 24.10, 0.6958, 0.1621, 96.5),
            (30_000, 2.31, 24.87, 0.7203, 0.1388, 98.9), (40_000, 2.18, 24.02, 0.7011, 0.1452, 99.4),
        };
        var ids = new List<Guid>();
        var sha = new string('c', 64);
        foreach (var point in points)
        {
            var jobId = Guid.CreateVersion7();
            var output = Path.Combine(folder, "evaluations", point.Iteration.ToString(CultureInfo.InvariantCulture));
            var checkpoint = $"/runs/wintok-b/ckpt-ep{point.Iteration / 10_000}-iter{point.Iteration}.pth";
            var spec = new EvaluateJobSpec("/data/val", "val", CorpusKind.ImageFolder, 50, output,
                new CheckpointReference(checkpoint, sha, 1, "1"), ModelChoice.Detect, 256, ["rfid", "psnr", "ssim", "lpips", "usage"], null, null,
                EvaluationPrecision.Float32, "wintok-eval/1|model=fp32", "resize-256", Schedule, (int)(point.Iteration / 10_000), point.Iteration,
                null, false, DateTimeOffset.UtcNow);
            await results.CreateJobAsync(new NewJob(jobId, EvaluateJobSpec.JobKind, spec.ToJson()), Token);
            await results.AddPartitionsAsync(jobId, [new NewPartition(0, "{}", 5000)], Token);
            await results.TryClaimPartitionAsync(jobId, 0, "gpu-worker-1", TimeSpan.FromMinutes(1), Token);
            await results.CommitPartitionAsync(new PartitionCommit(jobId, 0, "gpu-worker-1", null, 5000, 0, null, 61_000, "{}"), [], Token);
            await results.TryCompleteJobAsync(jobId, Token);
            await evaluations.RecordAsync(new NewEvaluation(jobId, sha, checkpoint, "wintok", "/data/val", "val", "resize-256", spec.Protocol, 5000,
                Schedule, spec.TrainingEpoch, point.Iteration),
                [new("rfid", point.Rfid), new("psnr", point.Psnr), new("ssim", point.Ssim), new("lpips_alex", point.Lpips), new("usage_percent", point.Usage)], Token);
            ids.Add(jobId);
            await Task.Delay(20, Token); // distinct creation times, in order
        }
        WriteGrid(Path.Combine(folder, "evaluations", "40000", "grid.png"));
        await RecordRegressionAsync(database, ids[^1], ids[^2], sha);
        await host.StopAsync(CancellationToken.None);
        return ids;
    }

    /// <summary>The regression check's record of the last point against the one before it.</summary>
    private static async Task RecordRegressionAsync(string database, Guid jobId, Guid baseline, string sha)
    {
        await using var connection = new SqliteConnection($"Data Source={database}");
        await connection.OpenAsync(Token);
        await connection.ExecuteAsync("""
            INSERT INTO regressions (job_id, schedule_name, checkpoint_sha256, metric, value, baseline_value, baseline_job_id, threshold, direction, created_at)
            VALUES (@JobId, @Schedule, @Sha, 'psnr', 24.02, 24.87, @Baseline, 0.5, 'higher', @Now)
            """, new { JobId = jobId.ToString(), Schedule, Sha = sha, Baseline = baseline.ToString(), Now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture) });
    }

    /// <summary>A small stand-in for the evaluation's originals-over-reconstructions grid.</summary>
    private static void WriteGrid(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(128, 64);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var paint = new SKPaint { Color = SKColors.SteelBlue };
            for (var i = 0; i < 4; i++) canvas.DrawRect(i * 32 + 2, 2, 28, 28, paint);
            paint.Color = SKColors.IndianRed;
            for (var i = 0; i < 4; i++) canvas.DrawRect(i * 32 + 2, 34, 28, 28, paint);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }
}
