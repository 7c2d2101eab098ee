using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using TorchSharp;
using WinTok.Checkpoints;

namespace WinTok.IntegrationTests;

/// <summary>
/// Issue 11's one-machine promise, run as a user runs it (docs/schedules.md, "On one machine"): `wintok sample`,
/// `wintok schedules add nightly`, `wintok worker` (SQLite, in-process queue and scheduler: the embedded defaults),
/// training checkpoints dropped into the watched folder, SIGTERM, then `wintok metrics trend`. Every step is a real
/// `wintok` process with HOME in the test's folder, so ~/.wintok/results.db is the test's own, and without the servers'
/// variables of deploy/services.env. The cron has a seconds field (every 10 s), so slots come due within the test.
/// </summary>
public sealed class ScheduledEvaluationEndToEndTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-schedule-e2e", Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Worker_OnTheEmbeddedDefaults_EvaluatesEachNewWatchedCheckpointWhenDue_AndTrendShowsThemWithTheWorseOneRegressed()
    {
        var home = Directory.CreateDirectory(Path.Combine(folder, "home")).FullName;
        var demo = Path.Combine(folder, "demo");
        var checkpoints = Path.Combine(folder, "run", "checkpoints");
        var evaluations = Path.Combine(folder, "evals");
        var environment = new Dictionary<string, string>
        {
            ["HOME"] = home,
            // The walkthrough's one setting: a copied checkpoint is whole at once, a trainer's takes the default 2 min.
            ["Scheduler__CheckpointSettleTime"] = "00:00:05",
            ["Worker__HealthFile"] = Path.Combine(folder, "worker-healthy"),
        };
        async Task<IReadOnlyList<string>> WintokAsync(params string[] arguments)
        {
            var (exitCode, stdout, log) = await WorkerProcess.RunAsync(arguments[0], arguments, environment, Patience, WorkerProcess.ServerVariables);
            Assert.True(exitCode == 0, $"wintok {string.Join(' ', arguments)} exited with {exitCode}:\n{log}");
            return stdout;
        }

        await WintokAsync("sample", demo);
        Directory.CreateDirectory(checkpoints);
        await WintokAsync("schedules", "add", "nightly", "--cron", "*/10 * * * * *", "--every", checkpoints,
            "--dataset", Path.Combine(demo, "images"), "--dataset-name", "sample", "--output", evaluations, "--metrics", "psnr,ssim,usage");

        var database = Path.Combine(home, ".wintok", "results.db");
        IReadOnlyList<string> table, listed;
        JsonElement trend;
        await using (var worker = WorkerProcess.Start("worker", ["worker"], environment, WorkerProcess.ServerVariables))
        {
            // A first checkpoint appears; a later slot evaluates it. Then a worse one: its evaluation has a baseline.
            var first = Path.Combine(checkpoints, "ckpt-ep1-iter1000.safetensors");
            File.Copy(Path.Combine(demo, "random-tiny.safetensors"), first);
            await WaitForEvaluationsAsync(worker, database, 1);
            WriteWorseCopy(first, Path.Combine(checkpoints, "ckpt-ep1-iter2000.safetensors"));
            await WaitForEvaluationsAsync(worker, database, 2);

            Assert.True(await worker.TerminateAsync(TimeSpan.FromMinutes(1)) == 0, $"the worker did not stop cleanly:\n{worker.Log}");
            Assert.True(worker.HasWritten("runs the evaluation schedules"), worker.Log);
            Assert.True(worker.HasWritten("in-process job queue"), worker.Log);
        }

        table = await WintokAsync("metrics", "trend", "--schedule", "nightly");
        using (var json = JsonDocument.Parse(string.Join('\n', await WintokAsync("metrics", "trend", "--schedule", "nightly", "--format", "json"))))
            trend = json.RootElement.Clone();
        listed = await WintokAsync("metrics", "list", "--schedule", "nightly");

        // One evaluation per checkpoint, in training order, each in its own output folder, with the values its
        // metrics.json holds.
        var rows = trend.EnumerateArray().ToList();
        Assert.Equal([1000L, 2000L], rows.Select(r => r.GetProperty("checkpoint").GetProperty("iteration").GetInt64()));
        var folders = Directory.GetDirectories(evaluations).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(2, folders.Count);
        foreach (var row in rows)
        {
            var checkpoint = row.GetProperty("checkpoint").GetProperty("path").GetString()!;
            var stem = Path.GetFileNameWithoutExtension(checkpoint);
            var output = Assert.Single(folders, f => Path.GetFileName(f).EndsWith($"-{stem}", StringComparison.Ordinal));
            using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "metrics.json"), Token));
            Assert.Equal(row.GetProperty("jobId").GetGuid(), report.RootElement.GetProperty("job_id").GetGuid());
            Assert.Equal(checkpoint, report.RootElement.GetProperty("checkpoint").GetString());
            Assert.Equal(24, report.RootElement.GetProperty("images").GetInt64());
            Assert.Equal("sample", row.GetProperty("dataset").GetString());
            var recorded = row.GetProperty("metrics").EnumerateObject().ToDictionary(m => m.Name, m => m.Value.GetDouble());
            var written = report.RootElement.GetProperty("metrics").EnumerateObject().ToDictionary(m => m.Name, m => m.Value.GetDouble());
            Assert.Equal(["psnr", "ssim", "usage_percent", "usage_entropy", "usage_perplexity"], recorded.Keys);
            Assert.Equal(written, recorded);

            // The table and `metrics list` show the same numbers, as they round them.
            var line = Assert.Single(table, l => l.Contains(Path.GetFileName(checkpoint), StringComparison.Ordinal));
            Assert.Contains(recorded["psnr"].ToString("0.####", CultureInfo.InvariantCulture), line, StringComparison.Ordinal);
            var listedLine = Assert.Single(listed, l => l.Contains(Path.GetFileName(checkpoint), StringComparison.Ordinal));
            Assert.Contains(recorded["psnr"].ToString("G6", CultureInfo.InvariantCulture), listedLine, StringComparison.Ordinal);
        }

        // The regression check ran in the worker after each evaluation was recorded: the first had no baseline, the
        // second is judged against it and its PSNR regressed.
        var (better, worse) = (rows[0].GetProperty("metrics").GetProperty("psnr").GetDouble(), rows[1].GetProperty("metrics").GetProperty("psnr").GetDouble());
        Assert.True(worse < better * 0.99, $"the damaged checkpoint's PSNR {worse} is not worse than {better} by more than the 1% threshold");
        Assert.Empty(rows[0].GetProperty("regressed").EnumerateArray());
        Assert.Contains("psnr", rows[1].GetProperty("regressed").EnumerateArray().Select(m => m.GetString()));
        Assert.Contains(table, l => l.Contains("ckpt-ep1-iter2000", StringComparison.Ordinal) && l.Contains("psnr", StringComparison.Ordinal));
        var show = await WintokAsync("schedules", "show", "nightly");
        Assert.Contains(show, l => l.Contains("regressions", StringComparison.Ordinal));
    }

    /// <summary>
    /// The checkpoint with its output convolution's weights and bias amplified 50 times: the reconstructions saturate,
    /// so every fidelity metric falls. Written beside, then renamed in, as a trainer finishes a file.
    /// </summary>
    private void WriteWorseCopy(string source, string destination)
    {
        var staging = Path.Combine(folder, Path.GetFileName(destination));
        using (var checkpoint = CheckpointFile.Read(source))
        using (torch.no_grad())
        {
            foreach (var name in new[] { "conv_out.weight", "conv_out.bias" }) checkpoint.StateDict[name].mul_(50);
            CheckpointFile.Write(staging, checkpoint.Args, checkpoint.StateDict);
        }
        File.Move(staging, destination);
    }

    /// <summary>Waits until <paramref name="count"/> evaluate jobs have succeeded (recorded, hooks run), reading the worker's SQLite file.</summary>
    private static async Task WaitForEvaluationsAsync(WorkerProcess worker, string database, int count)
    {
        var connection = new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ConnectionString;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Token);
        limit.CancelAfter(Patience);
        while (true)
        {
            Assert.False(worker.HasExited, $"the worker exited with {(worker.HasExited ? worker.ExitCode : 0)}:\n{worker.Log}");
            await using (var sqlite = new SqliteConnection(connection))
            {
                var statuses = (await sqlite.QueryAsync<string>(new CommandDefinition(
                    "SELECT status FROM jobs WHERE kind = 'evaluate'", cancellationToken: limit.Token))).ToList();
                Assert.True(!statuses.Contains("failed"), $"an evaluation failed:\n{worker.Log}");
                if (statuses.Count(s => s == "succeeded") >= count) return;
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), limit.Token);
            }
            catch (OperationCanceledException) when (!Token.IsCancellationRequested)
            {
                Assert.Fail($"{count} evaluations did not succeed within {Patience}:\n{worker.Log}");
            }
        }
    }
}
