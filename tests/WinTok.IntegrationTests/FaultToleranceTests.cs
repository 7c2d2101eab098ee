using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using WinTok.Contracts;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.IntegrationTests;

/// <summary>
/// A whole tokenize job through real RabbitMQ, PostgreSQL and Azurite, with two `wintok worker` child processes, and
/// one fault injected after the first partition is committed. Every corpus holds a truncated JPEG, random bytes named
/// .jpg and an empty file. Each test ends with the same check (<see cref="FaultJob.AssertDatasetCompleteAsync"/>): the
/// job succeeded, every good image is in the dataset exactly once, the failure records hold exactly the corrupt files,
/// and the verifier finds nothing wrong. In the services collection: these restart servers the other tests use.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class FaultToleranceTests(ServicesFixture services)
{
    private const int Images = 60;

    /// <summary>For the faults that take seconds to set in: enough partitions that the job is still running when they have.</summary>
    private const int LongJobImages = 360;

    private const int BrokerJobImages = 480;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Job_WhenCorpusHasCorruptImages_RecordsEachAsAFailureWithItsReasonAndTokenizesTheRest()
    {
        await using var job = await FaultJob.CreateAsync(services, "faults-corrupt-images", Images, CorruptFile.All);
        await job.WithLogsAsync(async () =>
        {
            await job.SubmitAsync();
            job.StartWorker("worker-a");
            job.StartWorker("worker-b");

            await job.AssertDatasetCompleteAsync();
            var failures = await job.Results.ListItemFailuresAsync(job.JobId, Token);
            Assert.All(failures, failure => Assert.EndsWith(failure.Key, failure.Source, StringComparison.Ordinal));
        });
    }

    [Fact]
    public async Task Job_WhenAWorkerIsKilledMidPartition_TheOtherWorkerFinishesWithNothingLostOrDuplicated()
    {
        await using var job = await FaultJob.CreateAsync(services, "faults-killed-worker", Images, CorruptFile.All);
        await job.WithLogsAsync(async () =>
        {
            await job.SubmitAsync();
            var doomed = job.StartWorker("worker-a");
            job.StartWorker("worker-b");
            await job.WaitForCommittedPartitionsAsync(1);
            var partition = await WaitForPartitionRunningOnAsync(job, "worker-a");

            await doomed.KillAsync();
            job.Note($"killed worker-a (SIGKILL) while it held partition {partition}");
            await AssertMidJobAsync(job);

            // Which worker commits that partition is a race (worker-a may have finished it just before the kill);
            // that it is in the dataset once, like every other, is not.
            await job.AssertDatasetCompleteAsync();
        });
    }

    [Fact]
    public async Task Job_WhenPoisonMessagesArrive_DeadLettersThemWithAReasonAndCompletes()
    {
        await using var job = await FaultJob.CreateAsync(services, "faults-poison-message", Images, CorruptFile.All);
        await job.WithLogsAsync(async () =>
        {
            await job.SubmitAsync();
            job.StartWorker("worker-a");
            job.StartWorker("worker-b");
            await job.WaitForCommittedPartitionsAsync(1);
            await AssertMidJobAsync(job);

            var missingJob = Guid.NewGuid();
            await PublishRawAsync(job.WorkQueue, "{\"jobId\": \"not a guid\", \"partition\": "u8.ToArray());
            await PublishRawAsync(job.WorkQueue, JsonSerializer.SerializeToUtf8Bytes(
                new TokenizePartition(missingJob, 0, 1), MessageJson.TypeInfo<TokenizePartition>()));
            job.Note($"published a malformed message and one for the nonexistent job {missingJob}");

            var reasons = await DrainDeadLetterReasonsAsync(job.WorkQueue + ".dead", expected: 2);
            Assert.Contains(reasons, reason => reason.StartsWith("Malformed message:", StringComparison.Ordinal));
            Assert.Contains(reasons, reason => reason.Contains($"job {missingJob} does not exist", StringComparison.Ordinal));
            await job.AssertDatasetCompleteAsync();
        });
    }

    [Fact]
    public async Task Job_WhenTheBrokerRestartsMidJob_WorkersReconnectAndTheJobCompletes()
    {
        // The longest job: RabbitMQ serves for 8-13 s after it is told to stop, and the job must outlast that.
        await using var job = await FaultJob.CreateAsync(services, "faults-broker-restart", BrokerJobImages, CorruptFile.All);
        await job.WithLogsAsync(async () =>
        {
            await job.SubmitAsync();
            job.StartWorker("worker-a");
            job.StartWorker("worker-b");
            await job.WaitForCommittedPartitionsAsync(1);

            await using var probe = await new ConnectionFactory { Uri = new Uri(services.RabbitMq), AutomaticRecoveryEnabled = false }
                .CreateConnectionAsync(Token);
            var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            probe.ConnectionShutdownAsync += (_, _) => { closed.TrySetResult(); return Task.CompletedTask; };
            job.Note("stopping RabbitMQ");
            var stopping = ServicesFixture.RunServicesScriptAsync("stop-one rabbitmq");
            try
            {
                await closed.Task.WaitAsync(TimeSpan.FromMinutes(1), Token);
                job.Note("RabbitMQ closed its connections");
                await AssertMidJobAsync(job, inFlight: 2); // from here each worker can finish only the one delivery it holds
                await stopping;
                job.Note("RabbitMQ stopped");
                await Task.Delay(TimeSpan.FromSeconds(2), Token);
            }
            finally
            {
                // The shared broker is started again even when the test fails here: the other tests need it.
                await stopping.ContinueWith(_ => { }, TaskScheduler.Default);
                await ServicesFixture.RunServicesScriptAsync("start-one rabbitmq", cancellationToken: CancellationToken.None);
            }
            job.Note("RabbitMQ started again");

            await job.AssertDatasetCompleteAsync();
        });
    }

    [Fact]
    public async Task Job_WhenAzuriteIsDownForTwentySecondsMidJob_RetriesThePartitionsAndCompletes()
    {
        // A private Azurite: stopping the shared one would fail the blob tests of other projects running meanwhile.
        // Disposed last (after the job's workers): stopped, so it does not outlive the test.
        await using var azurite = await PrivateAzurite.StartAsync();
        await using var job = await FaultJob.CreateAsync(services, "faults-azurite-outage", LongJobImages, CorruptFile.All, azurite.ConnectionString);
        await job.WithLogsAsync(async () =>
        {
            await job.SubmitAsync();
            job.StartWorker("worker-a");
            job.StartWorker("worker-b");
            await job.WaitForCommittedPartitionsAsync(1);

            job.Note("stopping Azurite");
            await azurite.StopAsync();
            job.Note("Azurite stopped");
            await AssertMidJobAsync(job, inFlight: 0); // no partition commits without its shard
            await Task.Delay(TimeSpan.FromSeconds(20), Token);
            await azurite.StartAgainAsync();
            job.Note("Azurite started again");

            await job.AssertDatasetCompleteAsync();
        });
    }

    /// <summary>
    /// The fault must land inside the job, or the test proves nothing: once it has set in, more partitions are left
    /// than the <paramref name="inFlight"/> ones that can still finish without the failed server.
    /// </summary>
    private static async Task AssertMidJobAsync(FaultJob job, int inFlight = 0)
    {
        var (committed, partitions) = await job.ProgressAsync();
        job.Note($"{committed} of {partitions} partitions committed when the fault set in");
        Assert.True(committed + inFlight < partitions,
            $"the fault set in too late: {committed} of {partitions} partitions were already committed");
    }

    /// <summary>Waits until <paramref name="worker"/> holds a partition it has not committed yet; returns its index.</summary>
    private static async Task<int> WaitForPartitionRunningOnAsync(FaultJob job, string worker)
    {
        var running = -1;
        var found = await ServicesFixture.EventuallyAsync(async () =>
        {
            var partitions = await job.Results.ListPartitionsAsync(job.JobId, Token);
            running = partitions.FirstOrDefault(p => p.Status == PartitionStatus.Running && p.Worker == $"{job.Name}-{worker}")?.Partition ?? -1;
            return running >= 0;
        }, TimeSpan.FromMinutes(1));
        Assert.True(found, $"{worker} never held a partition");
        return running;
    }

    private async Task PublishRawAsync(string queue, byte[] body)
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true), Token);
        await channel.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true }, body, Token);
    }

    /// <summary>Waits for <paramref name="expected"/> dead letters, takes them off the queue and returns their <c>x-wintok-reason</c>s.</summary>
    private async Task<List<string>> DrainDeadLetterReasonsAsync(string deadLetterQueue, int expected)
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: Token);
        var reasons = new List<string>();
        await ServicesFixture.EventuallyAsync(async () =>
        {
            while (await channel.BasicGetAsync(deadLetterQueue, autoAck: true, Token) is { } letter)
            {
                object? reason = null;
                letter.BasicProperties.Headers?.TryGetValue(DeadLetterHeaders.Reason, out reason);
                reasons.Add(reason is byte[] bytes ? Encoding.UTF8.GetString(bytes) : $"(no {DeadLetterHeaders.Reason} header)");
            }
            return reasons.Count >= expected;
        }, TimeSpan.FromMinutes(1));
        Assert.True(reasons.Count == expected, $"expected {expected} dead letters, found: {string.Join(" | ", reasons)}");
        return reasons;
    }
}
