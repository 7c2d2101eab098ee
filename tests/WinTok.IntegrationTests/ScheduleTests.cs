using WinTok.Jobs.Evaluate;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.IntegrationTests;

/// <summary>
/// Scheduled evaluations against the real PostgreSQL (and RabbitMQ for the restart), with replicas in this process on
/// one fake clock: which evaluate jobs the scheduler submits, for which checkpoints, exactly once; and regressions
/// judged from evaluations recorded directly, posted to a local webhook.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class ScheduleTests(ServicesFixture services)
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static Task TickAsync(IHost replica) => replica.Services.GetRequiredService<SchedulerReplica>().TickAsync(Token);

    [Fact]
    public async Task TickAsync_TwoReplicasOnOneClock_FireEachNightlySlotExactlyOnce()
    {
        await services.RequireRabbitMqAsync();
        await using var harness = await ScheduleHarness.CreateAsync(services, "replicas");
        await harness.ResetQueuesAsync();
        var checkpoint = await harness.WriteCheckpointAsync("fixed/ckpt-ep0-iter100.pth");
        var a = await harness.StartReplicaAsync("replica-a", rabbitMq: true);
        var b = await harness.StartReplicaAsync("replica-b", rabbitMq: true);
        await harness.AddScheduleAsync(a, "nightly", ScheduleTargetMode.Checkpoint, checkpoint);

        for (var day = 0; day < 4; day++)
        {
            foreach (var minute in new[] { 0, 1, 2 }) // several rounds at and after each slot, both replicas at once
            {
                harness.SetClock(day, 3, minute);
                await Task.WhenAll(TickAsync(a), TickAsync(b));
            }
        }

        var jobs = await harness.JobsAsync(a);
        var slots = await harness.SlotsAsync(a, "nightly");
        Assert.Equal(4, jobs.Count);
        Assert.All(jobs, j => Assert.Equal(checkpoint, j.Checkpoint));
        Assert.Equal(4, slots.Count);
        Assert.All(slots, s => Assert.Equal((SlotOutcome.Submitted, 1), (s.Outcome, s.Jobs.Count)));
        Assert.Equal(jobs.Select(j => j.Id).Order(), slots.SelectMany(s => s.Jobs).Order());
        Assert.Equal(4u, await harness.BrokerMessagesAsync()); // one partition each, published once
    }

    [Fact]
    public async Task RunScheduleAsync_AReplicaThatStalledPastItsLease_RecordsNothing_AndTheNewHolderFiresTheSlotOnce()
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, "fencing");
        var checkpoint = await harness.WriteCheckpointAsync("fixed/ckpt-ep0-iter100.pth");
        var a = await harness.StartReplicaAsync("replica-a");
        var b = await harness.StartReplicaAsync("replica-b");
        await harness.AddScheduleAsync(a, "nightly", ScheduleTargetMode.Checkpoint, checkpoint);
        var repository = a.Services.GetRequiredService<SchedulesRepository>();

        harness.SetClock(0, 2, 59);
        Assert.NotNull(await repository.TryAcquireLeaseAsync("replica-a", TimeSpan.FromMinutes(1), Token));
        harness.SetClock(0, 3, 1); // replica-a stalls: its lease expires and replica-b takes it
        Assert.NotNull(await repository.TryAcquireLeaseAsync("replica-b", TimeSpan.FromMinutes(1), Token));
        var schedule = ScheduleDefinition.From((await repository.GetAsync("nightly", Token))!);

        // Both now run the due slot at once; replica-a still believes it leads.
        await Task.WhenAll(
            a.Services.GetRequiredService<ScheduleRunner>().RunScheduleAsync(schedule, "replica-a", Token),
            b.Services.GetRequiredService<ScheduleRunner>().RunScheduleAsync(schedule, "replica-b", Token));

        var slot = Assert.Single(await harness.SlotsAsync(a, "nightly"));
        Assert.Equal(("replica-b", SlotOutcome.Submitted), (slot.Scheduler, slot.Outcome));
        Assert.Single(await harness.JobsAsync(a));
        Assert.Equal((0, 1), (ScheduleHarness.InProcessMessages(a), ScheduleHarness.InProcessMessages(b)));
    }

    [Fact]
    public async Task RunNowAsync_TwoProcessesInTheSameSecond_RecordOneSlotAndOneJob()
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, "run-now");
        var checkpoint = await harness.WriteCheckpointAsync("fixed/ckpt-ep0-iter100.pth");
        var a = await harness.StartReplicaAsync("cli-a");
        var b = await harness.StartReplicaAsync("cli-b");
        await harness.AddScheduleAsync(a, "nightly", ScheduleTargetMode.Checkpoint, checkpoint);
        var schedule = ScheduleDefinition.From((await a.Services.GetRequiredService<SchedulesRepository>().GetAsync("nightly", Token))!);

        // No lease here: only the slot's key stands between them.
        var runs = await Task.WhenAll(
            a.Services.GetRequiredService<ScheduleRunner>().RunNowAsync(schedule, null, publish: true, Token),
            b.Services.GetRequiredService<ScheduleRunner>().RunNowAsync(schedule, null, publish: true, Token));

        Assert.Equal([SlotRecording.Recorded, SlotRecording.AlreadyRecorded], runs.Select(r => r.Recording!.Value).Order());
        Assert.Single(await harness.JobsAsync(a));
        Assert.Equal(SlotTrigger.Manual, Assert.Single(await harness.SlotsAsync(a, "nightly")).TriggerKind);
    }

    [Fact]
    public async Task Restart_BetweenCommitAndPublish_PublishesTheJobOnce_AndNeitherLosesNorRepeatsASlot()
    {
        await services.RequireRabbitMqAsync();
        await using var harness = await ScheduleHarness.CreateAsync(services, "restart");
        await harness.ResetQueuesAsync();
        var checkpoint = await harness.WriteCheckpointAsync("fixed/ckpt-ep0-iter100.pth");
        var crashing = new CrashingPublisher();
        var first = await harness.StartReplicaAsync("scheduler-0", crashing, rabbitMq: true);
        await harness.AddScheduleAsync(first, "nightly", ScheduleTargetMode.Checkpoint, checkpoint);

        harness.SetClock(0, 3, 0);
        await Assert.ThrowsAsync<InvalidOperationException>(() => TickAsync(first)); // committed, then "killed" before publishing
        var job = Assert.Single(await harness.JobsAsync(first));
        await harness.StopAsync(first);
        Assert.Equal(1, crashing.Calls);

        // The same pod restarts a few minutes later, with a working broker.
        harness.SetClock(0, 3, 5);
        var second = await harness.StartReplicaAsync("scheduler-0", rabbitMq: true);
        await TickAsync(second);
        await TickAsync(second);

        Assert.Equal(job, Assert.Single(await harness.JobsAsync(second)));
        Assert.Equal(1u, await harness.BrokerMessagesAsync()); // its one partition, published once
        Assert.Single(await harness.SlotsAsync(second, "nightly"));

        // The next night's slot fires once more.
        harness.SetClock(1, 3, 0);
        await TickAsync(second);
        await TickAsync(second);
        Assert.Equal(2, (await harness.JobsAsync(second)).Count);
        Assert.Equal(2u, await harness.BrokerMessagesAsync());
        Assert.Equal(2, (await harness.SlotsAsync(second, "nightly")).Count);
    }

    [Theory]
    [InlineData(MissedSlotPolicy.RunOnce, "Postgres")]
    [InlineData(MissedSlotPolicy.Skip, "Postgres")]
    [InlineData(MissedSlotPolicy.RunOnce, "Sqlite")]
    public async Task Restart_AfterThreeNightsDown_FollowsTheMissedPolicyAndRecordsEverySlot(string policy, string provider)
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, $"missed-{policy}-{provider}", provider);
        var checkpoint = await harness.WriteCheckpointAsync("fixed/ckpt-ep0-iter100.pth");
        var first = await harness.StartReplicaAsync("scheduler-0");
        await harness.AddScheduleAsync(first, "nightly", ScheduleTargetMode.Checkpoint, checkpoint, missed: policy);
        harness.SetClock(0, 3, 0);
        await TickAsync(first);
        await harness.StopAsync(first);

        // Everything is down for three nights; a new process starts at noon of the fourth day.
        harness.SetClock(3, 12, 0);
        var second = await harness.StartReplicaAsync("scheduler-1");
        await TickAsync(second); // the old holder's lease has long expired
        await TickAsync(second);

        var slots = await harness.SlotsAsync(second, "nightly");
        Assert.Equal(4, slots.Count);
        Assert.Equal(SlotOutcome.Submitted, slots[0].Outcome);
        var missed = slots.Skip(1).Select(s => s.Outcome).ToList();
        if (policy == MissedSlotPolicy.RunOnce)
        {
            Assert.Equal([SlotOutcome.Missed, SlotOutcome.Missed, SlotOutcome.Submitted], missed);
            Assert.Equal(2, (await harness.JobsAsync(second)).Count);
        }
        else
        {
            Assert.Equal([SlotOutcome.Skipped, SlotOutcome.Skipped, SlotOutcome.Skipped], missed);
            Assert.Single(await harness.JobsAsync(second));
        }
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task Watch_ANewCheckpointUnderThePrefix_IsEvaluatedOnce_AndACopyOfAnEvaluatedOneNot(string provider)
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, $"watch-{provider}", provider);
        var run = Path.Combine(harness.Checkpoints, "run-1");
        var iter100 = await harness.WriteCheckpointAsync("run-1/ckpt-ep0-iter100.pth");
        await harness.WriteCheckpointAsync("run-1/notes.txt");
        var replica = await harness.StartReplicaAsync("scheduler-0");
        await harness.AddScheduleAsync(replica, "every", ScheduleTargetMode.Every, run);

        harness.SetClock(0, 3, 0);
        await TickAsync(replica);
        Assert.Equal([iter100], (await harness.JobsAsync(replica)).Select(j => j.Checkpoint));

        harness.SetClock(1, 3, 0);
        await TickAsync(replica); // nothing new

        var iter200 = await harness.WriteCheckpointAsync("run-1/ckpt-ep0-iter200.pth");
        var iter1000 = await harness.WriteCheckpointAsync("run-1/ckpt-ep1-iter1000.pth");
        File.Copy(iter100, Path.Combine(run, "ckpt-ep0-iter150.pth")); // same content as one already evaluated
        harness.SetClock(2, 3, 0);
        await TickAsync(replica);
        harness.SetClock(3, 3, 0);
        await TickAsync(replica);

        Assert.Equal([iter100, iter200, iter1000], (await harness.JobsAsync(replica)).Select(j => j.Checkpoint).Order(StringComparer.Ordinal));
        var slots = await harness.SlotsAsync(replica, "every");
        Assert.Equal([SlotOutcome.Submitted, SlotOutcome.NothingNew, SlotOutcome.Submitted, SlotOutcome.NothingNew], slots.Select(s => s.Outcome));
        Assert.Equal(2, slots[2].Jobs.Count);
    }

    [Fact]
    public async Task Watch_Newest_EvaluatesOnlyTheNewestCheckpointOfEachSlot()
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, "newest");
        var run = Path.Combine(harness.Checkpoints, "run-1");
        await harness.WriteCheckpointAsync("run-1/ckpt-ep0-iter100.pth");
        var iter900 = await harness.WriteCheckpointAsync("run-1/ckpt-ep0-iter900.pth");
        var replica = await harness.StartReplicaAsync("scheduler-0");
        await harness.AddScheduleAsync(replica, "newest", ScheduleTargetMode.Newest, run);

        harness.SetClock(0, 3, 0);
        await TickAsync(replica);
        harness.SetClock(1, 3, 0);
        await TickAsync(replica);
        var ep1 = await harness.WriteCheckpointAsync("run-1/ckpt-ep1-iter10.pth");
        harness.SetClock(2, 3, 0);
        await TickAsync(replica);

        Assert.Equal([iter900, ep1], (await harness.JobsAsync(replica)).Select(j => j.Checkpoint));
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task RegressionCheck_APlantedWorseCheckpoint_IsRecordedLoggedAndPostedWithRetries_ABetterOneIsNot(string provider)
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, $"regressions-{provider}", provider);
        using var webhook = new LoopbackHttpRecorder([HttpStatusCode.ServiceUnavailable, HttpStatusCode.OK]);
        var url = $"{webhook.Prefix}hooks/s3cr3t-token?key=also-secret";
        var replica = await harness.StartReplicaAsync("worker-0");
        await harness.AddScheduleAsync(replica, "nightly", ScheduleTargetMode.Newest, harness.Checkpoints, webhook: url,
            thresholds: ["rfid=0.05", "psnr=1%"]);
        var results = replica.Services.GetRequiredService<ResultsRepository>();
        var evaluations = replica.Services.GetRequiredService<EvaluationsRepository>();
        var hooks = replica.Services.GetServices<IEvaluationRecordedHook>().ToList();
        var schedules = replica.Services.GetRequiredService<SchedulesRepository>();

        async Task<Guid> FinishAsync(string name, int iteration, double rfid, double psnr, double ssim)
        {
            harness.Clock.Advance(TimeSpan.FromHours(1));
            var jobId = Guid.CreateVersion7(harness.Clock.GetUtcNow());
            await results.CreateJobAsync(new NewJob(jobId, "evaluate", "{}"), Token);
            await evaluations.RecordAsync(new NewEvaluation(jobId, $"{iteration:x64}", $"/runs/a/{name}", "wintok", "/data/val", "tiny-set", "pre", "proto",
                3, "nightly", 0, iteration), [new MetricValue("rfid", rfid), new MetricValue("psnr", psnr), new MetricValue("ssim", ssim)], Token);
            foreach (var hook in hooks) await hook.OnEvaluationRecordedAsync(jobId, Token);
            return jobId;
        }

        var first = await FinishAsync("ckpt-ep0-iter100.pth", 100, rfid: 1.00, psnr: 25.0, ssim: 0.80);
        var better = await FinishAsync("ckpt-ep0-iter200.pth", 200, rfid: 0.90, psnr: 25.5, ssim: 0.81);
        var noisy = await FinishAsync("ckpt-ep0-iter300.pth", 300, rfid: 0.94, psnr: 25.3, ssim: 0.805); // worse than the best, within thresholds
        Assert.Empty(await schedules.ListRegressionsAsync(new RegressionFilter(ScheduleName: "nightly"), Token));

        var worse = await FinishAsync("ckpt-ep0-iter400.pth", 400, rfid: 1.20, psnr: 24.0, ssim: 0.81);
        await hooks[0].OnEvaluationRecordedAsync(worse, Token); // a redelivered finish records and posts nothing more

        var regressions = (await schedules.ListRegressionsAsync(new RegressionFilter(ScheduleName: "nightly"), Token)).OrderBy(r => r.Metric).ToList();
        Assert.Equal(["psnr", "rfid"], regressions.Select(r => r.Metric));
        Assert.All(regressions, r => Assert.Equal(worse, r.JobId));
        Assert.Equal((24.0, 25.5, better, MetricDirection.Higher), (regressions[0].Value, regressions[0].BaselineValue, regressions[0].BaselineJobId, regressions[0].Direction));
        Assert.Equal(0.255, regressions[0].Threshold, 9); // 1% of the best PSNR so far
        Assert.Equal((1.20, 0.90, better, 0.05, MetricDirection.Lower),
            (regressions[1].Value, regressions[1].BaselineValue, regressions[1].BaselineJobId, regressions[1].Threshold, regressions[1].Direction));
        Assert.All(regressions, r => Assert.NotNull(r.NotifiedAt));

        // The webhook: refused once (503), retried, delivered once with both metrics.
        Assert.Equal(2, webhook.Requests.Count);
        Assert.All(webhook.Requests, r => Assert.Equal("/hooks/s3cr3t-token", r.Path));
        using var payload = JsonDocument.Parse(webhook.Requests.Last().Body);
        Assert.Equal("wintok.regression", payload.RootElement.GetProperty("event").GetString());
        Assert.Equal(worse, payload.RootElement.GetProperty("jobId").GetGuid());
        Assert.Equal(["psnr", "rfid"], payload.RootElement.GetProperty("regressions").EnumerateArray().Select(m => m.GetProperty("metric").GetString()));

        Assert.Equal(2, harness.Logs.Lines.Count(l => l.Level == LogLevel.Warning && l.EventId == 6130));
        Assert.Contains(harness.Logs.Lines, l => l.EventId == 6133 && l.Text.Contains("127.0.0.1", StringComparison.Ordinal));
        Assert.DoesNotContain(harness.Logs.Lines, l => l.Text.Contains("s3cr3t", StringComparison.Ordinal) || l.Text.Contains("also-secret", StringComparison.Ordinal));
        Assert.NotEqual(first, noisy);
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task RegressionCheck_WhenTheWebhookIsDown_RecordsTheRegression_AndTheLeaseHolderPostsItLater(string provider)
    {
        await using var harness = await ScheduleHarness.CreateAsync(services, $"webhook-down-{provider}", provider);
        using var webhook = new LoopbackHttpRecorder([HttpStatusCode.BadGateway, HttpStatusCode.BadGateway, HttpStatusCode.BadGateway, HttpStatusCode.BadGateway,
            HttpStatusCode.Accepted]);
        var replica = await harness.StartReplicaAsync("worker-0");
        var pinned = "/runs/a/ckpt-ep0-iter100.pth";
        await harness.AddScheduleAsync(replica, "pinned", ScheduleTargetMode.Checkpoint, pinned, baseline: pinned, webhook: $"{webhook.Prefix}t0ken");
        var results = replica.Services.GetRequiredService<ResultsRepository>();
        var evaluations = replica.Services.GetRequiredService<EvaluationsRepository>();
        var hook = replica.Services.GetServices<IEvaluationRecordedHook>().Single();
        var schedules = replica.Services.GetRequiredService<SchedulesRepository>();

        async Task<Guid> FinishAsync(string path, double ssim)
        {
            harness.Clock.Advance(TimeSpan.FromHours(1));
            var jobId = Guid.CreateVersion7(harness.Clock.GetUtcNow());
            await results.CreateJobAsync(new NewJob(jobId, "evaluate", "{}"), Token);
            await evaluations.RecordAsync(new NewEvaluation(jobId, path.GetHashCode(StringComparison.Ordinal).ToString("x64", System.Globalization.CultureInfo.InvariantCulture),
                path, "wintok", "/data/val", "tiny-set", "pre", "proto", 3, "pinned", null, null), [new MetricValue("ssim", ssim)], Token);
            await hook.OnEvaluationRecordedAsync(jobId, Token);
            return jobId;
        }

        var baseline = await FinishAsync(pinned, ssim: 0.80);
        await FinishAsync("/runs/a/ckpt-ep0-iter900.pth", ssim: 0.85); // better than the pinned baseline
        var worse = await FinishAsync("/runs/a/ckpt-ep1-iter100.pth", ssim: 0.70);

        var regression = Assert.Single(await schedules.ListRegressionsAsync(new RegressionFilter(ScheduleName: "pinned"), Token));
        Assert.Equal((worse, 0.80, baseline), (regression.JobId, regression.BaselineValue, regression.BaselineJobId));
        Assert.Null(regression.NotifiedAt); // four 502s: the first try and three retries
        Assert.Equal(4, webhook.Requests.Count);
        Assert.Contains(harness.Logs.Lines, l => l.Level == LogLevel.Error && l.EventId == 6134);

        harness.Clock.Advance(TimeSpan.FromMinutes(5));
        await TickAsync(replica);

        Assert.NotNull(Assert.Single(await schedules.ListRegressionsAsync(new RegressionFilter(ScheduleName: "pinned"), Token)).NotifiedAt);
        Assert.Equal(5, webhook.Requests.Count);
        Assert.DoesNotContain(harness.Logs.Lines, l => l.Text.Contains("t0ken", StringComparison.Ordinal));
    }
}
