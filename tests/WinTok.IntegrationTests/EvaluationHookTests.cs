using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Schedules;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.IntegrationTests;

/// <summary>
/// The evaluate handler tells the <see cref="IEvaluationRecordedHook"/>s after it records an evaluation, and again at a
/// repeated finish: the job is marked succeeded only after the hooks ran, so a hook that failed (the regression check
/// hitting a database blip) is made good by the redelivered message, whose finish records nothing new. In this process:
/// `wintok worker`'s composition on a SQLite file and an in-process queue, `wintok sample`'s checkpoint on its images.
/// </summary>
public sealed class EvaluationHookTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-evaluation-hooks", Guid.NewGuid().ToString("N"));

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
    public async Task Finish_WhenAHookFailsAfterTheEvaluationIsRecorded_CallsEveryHookAgainOnTheRedelivery_AndRecordsOnce()
    {
        var demo = Path.Combine(folder, "demo");
        var (exitCode, _, log) = await WorkerProcess.RunAsync("sample", ["sample", demo, "--images-per-class", "1"], new Dictionary<string, string>(),
            TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0, log);
        var flaky = new FlakyHook();
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={Path.Combine(folder, "results.db")}",
            ["JobQueue:Transport"] = "InProcess",
            ["Checkpoints:CacheFolder"] = Path.Combine(folder, "cache"),
            ["Model:Device"] = "cpu",
            ["Worker:WorkerName"] = "hooks-worker",
        }, builder =>
        {
            builder.AddWinTokWorker(healthFile: false);
            builder.AddEvaluationSchedules(runScheduler: false);
            builder.Services.AddSingleton<IEvaluationRecordedHook>(flaky);
        });
        await host.StartAsync(Token);

        Guid jobId;
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var submitter = scope.ServiceProvider.GetRequiredService<EvaluateJobSubmitter>();
            var plan = await submitter.PlanAsync(new EvaluateRequest(Path.Combine(demo, "random-tiny.safetensors"), Path.Combine(demo, "images"),
                Path.Combine(folder, "evaluation"), ModelChoice.Detect, [EvaluationMetrics.Psnr]), Token);
            jobId = (await submitter.SubmitAsync(plan, Token)).JobId;
        }

        var results = host.Services.GetRequiredService<ResultsRepository>();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Token);
        limit.CancelAfter(TimeSpan.FromMinutes(3));
        while ((await results.GetJobAsync(jobId, limit.Token))!.Status is not (JobStatus.Succeeded or JobStatus.Failed))
            await Task.Delay(TimeSpan.FromMilliseconds(250), limit.Token);
        await host.StopAsync(Token);

        Assert.Equal(JobStatus.Succeeded, (await results.GetJobAsync(jobId, Token))!.Status);
        // Called at the first finish (it failed there, after the evaluation was recorded) and at the redelivery's.
        Assert.Equal([jobId, jobId], flaky.Calls);
        var evaluation = await host.Services.GetRequiredService<EvaluationsRepository>().GetAsync(jobId, Token);
        Assert.NotNull(evaluation);
        Assert.Contains("psnr", evaluation.Metrics.Keys);
        Assert.Single(await host.Services.GetRequiredService<EvaluationsRepository>().ListAsync(new EvaluationFilter(), Token));
    }

    /// <summary>Fails its first call, as a regression check meeting a database blip would; records every call.</summary>
    private sealed class FlakyHook : IEvaluationRecordedHook
    {
        private readonly List<Guid> calls = [];

        public IReadOnlyList<Guid> Calls
        {
            get
            {
                lock (calls) return [.. calls];
            }
        }

        public Task OnEvaluationRecordedAsync(Guid jobId, CancellationToken cancellationToken)
        {
            lock (calls)
            {
                calls.Add(jobId);
                if (calls.Count == 1) throw new TimeoutException("the results database did not answer in time");
            }
            return Task.CompletedTask;
        }
    }
}
