using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using WinTok.Results;
using WinTok.Worker.Partitions;
using WinTok.Messaging;
using WinTok.Jobs;
using WinTok.Worker.Hosting;

namespace WinTok.IntegrationTests;

/// <summary>The results database on the real PostgreSQL server, and the same behaviour on a SQLite file.</summary>
[Collection(ServicesCollection.Name)]
public sealed class ResultsDatabaseTests(ServicesFixture services) : IDisposable
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private readonly List<IHost> hosts = [];
    private readonly string sqliteDirectory = Directory.CreateTempSubdirectory("wintok-results-").FullName;

    public void Dispose()
    {
        foreach (var host in hosts)
        {
            host.Dispose();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(sqliteDirectory, recursive: true);
    }

    [Fact]
    public async Task MigrateAsync_WhenTwoWorkersStartAtOnce_AppliesEachMigrationOnce()
    {
        await services.RequirePostgresAsync();
        await services.ResetPostgresAsync();
        var first = Host(ResultsProvider.Postgres).Services.GetRequiredService<ResultsDatabaseMigrator>();
        var second = Host(ResultsProvider.Postgres).Services.GetRequiredService<ResultsDatabaseMigrator>();

        var applied = await Task.WhenAll(first.MigrateAsync(Token), second.MigrateAsync(Token));
        var again = await first.MigrateAsync(Token);

        Assert.Equal(ResultsMigrations.All.Count, applied.Sum());
        Assert.Equal(0, again);
        await using var connection = await Host(ResultsProvider.Postgres).Services.GetRequiredService<ResultsDatabase>().OpenConnectionAsync(Token);
        Assert.Equal(ResultsMigrations.All.Count, await connection.ExecuteScalarAsync<int>(
            new CommandDefinition("SELECT COUNT(*) FROM schema_migrations", cancellationToken: Token)));
    }

    [Fact]
    public async Task MigrateAsync_WhenTwoProcessesShareASqliteFile_AppliesEachMigrationOnce()
    {
        var first = Host(ResultsProvider.Sqlite).Services.GetRequiredService<ResultsDatabaseMigrator>();
        var second = Host(ResultsProvider.Sqlite).Services.GetRequiredService<ResultsDatabaseMigrator>();

        var applied = await Task.WhenAll(first.MigrateAsync(Token), second.MigrateAsync(Token));

        Assert.Equal(ResultsMigrations.All.Count, applied.Sum());
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task CommitPartitionAsync_WhenAlreadyCommitted_ReportsItAndWritesNothing(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        var jobId = await NewJobAsync(results, partitions: 2);
        Assert.Equal(ClaimOutcome.Claimed, (await results.TryClaimPartitionAsync(jobId, 0, "w1", TimeSpan.FromMinutes(5), Token)).Outcome);

        var first = await results.CommitPartitionAsync(Commit(jobId, 0, "w1", "aaaa"), [new ItemFailure("k1", "s3://x/1.jpg", "corrupt JPEG")], Token);
        var second = await results.CommitPartitionAsync(Commit(jobId, 0, "w2", "bbbb"),
            [new ItemFailure("k1", "s3://x/1.jpg", "corrupt JPEG"), new ItemFailure("k2", "s3://x/2.jpg", "too small")], Token);

        Assert.False(first.AlreadyCommitted);
        Assert.True(second.AlreadyCommitted);
        Assert.Equal("aaaa", second.CommittedSha256);
        var partition = (await results.ListPartitionsAsync(jobId, Token))[0];
        Assert.Equal((PartitionStatus.Committed, "w1", "aaaa", 1), (partition.Status, partition.Worker, partition.Sha256, partition.FailuresCount));
        Assert.Single(await results.ListItemFailuresAsync(jobId, Token));
        Assert.Equal(ClaimOutcome.AlreadyCommitted, (await results.TryClaimPartitionAsync(jobId, 0, "w3", TimeSpan.FromMinutes(5), Token)).Outcome);
        var progress = await results.GetJobProgressAsync(jobId, Token);
        Assert.Equal((2, 1, 1, 100L, 1L), (progress!.Partitions, progress.Committed, progress.Pending, progress.Rows, progress.ItemFailures));
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task TryCompleteJobAsync_WhenPartitionsCommitConcurrently_ReturnsTrueExactlyOnce(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        const int partitions = 12;
        for (var round = 0; round < 3; round++)
        {
            var jobId = await NewJobAsync(results, partitions);
            var completions = await Task.WhenAll(Enumerable.Range(0, partitions).Select(p => Task.Run(async () =>
            {
                await results.CommitPartitionAsync(Commit(jobId, p, $"w{p}", $"sha{p}"), [], Token);
                // A duplicate delivery committing the same partition again must not complete the job twice either.
                await results.CommitPartitionAsync(Commit(jobId, p, $"w{p}b", $"sha{p}"), [], Token);
                return await results.TryCompleteJobAsync(jobId, Token);
            }, Token)));

            Assert.Equal(1, completions.Count(completed => completed));
            Assert.Equal(JobStatus.Succeeded, (await results.GetJobAsync(jobId, Token))!.Status);
            Assert.False(await results.TryCompleteJobAsync(jobId, Token));
        }
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task TryClaimPartitionAsync_WhenLeaseHeldOrExpiredOrJobCancelled_ActsOnTheLease(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        var jobId = await NewJobAsync(results, partitions: 3);

        var held = await results.TryClaimPartitionAsync(jobId, 0, "w1", TimeSpan.FromMinutes(5), Token);
        var refused = await results.TryClaimPartitionAsync(jobId, 0, "w2", TimeSpan.FromMinutes(5), Token);
        await results.TryClaimPartitionAsync(jobId, 1, "w1", TimeSpan.FromMilliseconds(1), Token);
        await Task.Delay(50, Token);
        var takenOver = await results.TryClaimPartitionAsync(jobId, 1, "w2", TimeSpan.FromMinutes(5), Token);
        var renewedByLoser = await results.RenewLeaseAsync(jobId, 1, "w1", TimeSpan.FromMinutes(5), itemsDone: 0, Token);
        var renewedByOwner = await results.RenewLeaseAsync(jobId, 1, "w2", TimeSpan.FromMinutes(5), itemsDone: 0, Token);
        Assert.True(await results.CancelJobAsync(jobId, Token));
        var afterCancel = await results.TryClaimPartitionAsync(jobId, 2, "w1", TimeSpan.FromMinutes(5), Token);

        Assert.Equal((ClaimOutcome.Claimed, 1), (held.Outcome, held.Attempt));
        Assert.Equal((ClaimOutcome.LeasedByAnother, "w1"), (refused.Outcome, refused.Worker));
        Assert.Equal((ClaimOutcome.Claimed, 2), (takenOver.Outcome, takenOver.Attempt));
        Assert.False(renewedByLoser);
        Assert.True(renewedByOwner);
        Assert.Equal(ClaimOutcome.JobNotActive, afterCancel.Outcome);
        Assert.Equal(JobStatus.Cancelled, (await results.GetJobAsync(jobId, Token))!.Status);
        Assert.Equal(ClaimOutcome.NotFound, (await results.TryClaimPartitionAsync(Guid.NewGuid(), 0, "w1", TimeSpan.FromMinutes(1), Token)).Outcome);
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task ReleasePartitionAsync_AfterAFailedAttempt_LetsTheRedeliveryClaimAtOnce(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        var jobId = await NewJobAsync(results, partitions: 1);
        await results.TryClaimPartitionAsync(jobId, 0, "w1", TimeSpan.FromMinutes(5), Token);

        var releasedByOther = await results.ReleasePartitionAsync(jobId, 0, "w2", Token);
        var released = await results.ReleasePartitionAsync(jobId, 0, "w1", Token);
        var again = await results.TryClaimPartitionAsync(jobId, 0, "w1", TimeSpan.FromMinutes(5), Token);

        Assert.False(releasedByOther);
        Assert.True(released);
        Assert.Equal(ClaimOutcome.Claimed, again.Outcome);
        Assert.Equal(2, again.Attempt);
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task ResetFailedPartitionsAsync_WhenJobFailed_ReopensOnlyWhatFailed(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        var jobId = await NewJobAsync(results, partitions: 3);
        await results.CommitPartitionAsync(Commit(jobId, 0, "w1", "sha0"), [], Token);
        await results.TryClaimPartitionAsync(jobId, 1, "w1", TimeSpan.FromMinutes(5), Token);
        Assert.True(await results.MarkPartitionFailedAsync(jobId, 1, "w1", "CUDA out of memory", Token));
        Assert.Equal(JobStatus.Running, (await results.GetJobAsync(jobId, Token))!.Status);
        await results.TryClaimPartitionAsync(jobId, 2, "w2", TimeSpan.FromMinutes(5), Token);
        Assert.True(await results.MarkPartitionFailedAsync(jobId, 2, "w2", "decode error budget exceeded", Token));
        Assert.False(await results.MarkPartitionFailedAsync(jobId, 0, "w2", "late failure of a committed partition", Token));

        var failed = await results.GetJobAsync(jobId, Token);
        var reset = await results.ResetFailedPartitionsAsync(jobId, [], Token);
        var resetAgain = await results.ResetFailedPartitionsAsync(jobId, [], Token);

        Assert.Equal((JobStatus.Failed, "2 of 3 partitions failed"), (failed!.Status, failed.Error));
        Assert.Equal([1, 2], reset);
        Assert.Empty(resetAgain);
        Assert.Equal(JobStatus.Queued, (await results.GetJobAsync(jobId, Token))!.Status);
        var retried = await results.TryClaimPartitionAsync(jobId, 1, "w3", TimeSpan.FromMinutes(5), Token);
        Assert.Equal((ClaimOutcome.Claimed, 2), (retried.Outcome, retried.Attempt));
        var jobs = await results.ListJobsAsync(10, JobStatus.Running, Token);
        Assert.Equal(jobId, Assert.Single(jobs).Id);
    }

    [Fact]
    public async Task PartitionLease_WhileHeld_KeepsOthersOutAndCancelsWorkWhenTheLeaseIsLost()
    {
        var results = await RepositoryAsync(ResultsProvider.Postgres);
        var jobId = await NewJobAsync(results, partitions: 1);
        var lease = TimeSpan.FromMilliseconds(600);
        Assert.Equal(ClaimOutcome.Claimed, (await results.TryClaimPartitionAsync(jobId, 0, "w1", lease, Token)).Outcome);

        await using var held = PartitionLease.Hold(results, jobId, 0, "w1", lease, () => 0, TimeProvider.System, NullLogger.Instance, Token);
        await Task.Delay(lease * 3, Token);
        var meanwhile = await results.TryClaimPartitionAsync(jobId, 0, "w2", lease, Token);
        await results.CommitPartitionAsync(Commit(jobId, 0, "w2", "sha"), [], Token); // someone else finished it
        var cancelled = await ServicesFixture.EventuallyAsync(() => Task.FromResult(held.Token.IsCancellationRequested), TimeSpan.FromSeconds(5));

        Assert.Equal(ClaimOutcome.LeasedByAnother, meanwhile.Outcome);
        Assert.True(cancelled);
        Assert.True(held.IsLost);
    }

    [Theory]
    [InlineData("Postgres")]
    [InlineData("Sqlite")]
    public async Task RecordMetricAsync_StoresValueAndDetails(string provider)
    {
        var results = await RepositoryAsync(Enum.Parse<ResultsProvider>(provider));
        var jobId = await NewJobAsync(results, partitions: 1);

        await results.RecordMetricAsync(new NewMetric(jobId, "ckpt-sha", "rfid", 1.25, """{"samples": 50000}"""), Token);
        await results.RecordMetricAsync(new NewMetric(jobId, "ckpt-sha", "psnr", 27.5, null), Token);

        var metrics = await results.ListMetricsAsync(jobId, Token);
        Assert.Equal([("rfid", 1.25), ("psnr", 27.5)], metrics.Select(m => (m.Name, m.Value)));
        Assert.Contains("50000", metrics[0].DetailsJson);
    }

    private async Task<ResultsRepository> RepositoryAsync(ResultsProvider provider)
    {
        if (provider == ResultsProvider.Postgres)
        {
            await services.RequirePostgresAsync();
            await services.ResetPostgresAsync();
        }
        var host = Host(provider);
        await host.Services.GetRequiredService<ResultsDatabaseMigrator>().MigrateAsync(Token);
        return host.Services.GetRequiredService<ResultsRepository>();
    }

    private static async Task<Guid> NewJobAsync(ResultsRepository results, int partitions)
    {
        var jobId = Guid.NewGuid();
        Assert.True(await results.CreateJobAsync(new NewJob(jobId, "tokenize", """{"input": "corpus/"}"""), Token));
        Assert.False(await results.CreateJobAsync(new NewJob(jobId, "tokenize", """{"input": "corpus/"}"""), Token));
        var specs = Enumerable.Range(0, partitions).Select(p => new NewPartition(p, $$"""{"files": ["img-{{p}}.jpg"]}""", Items: 1)).ToList();
        Assert.Equal(partitions, await results.AddPartitionsAsync(jobId, specs, Token));
        Assert.Equal(0, await results.AddPartitionsAsync(jobId, specs, Token));
        return jobId;
    }

    private static PartitionCommit Commit(Guid jobId, int partition, string worker, string sha256) =>
        new(jobId, partition, worker, $"shards/part-{partition:D6}.parquet", RowCount: 100, ByteCount: 2048 * 100, sha256, DurationMs: 1234,
            ResultJson: $$"""{"shard": "{{sha256}}"}""");

    private IHost Host(ResultsProvider provider)
    {
        var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = provider.ToString(),
            ["ResultsDatabase:ConnectionString"] = provider == ResultsProvider.Postgres
                ? services.Postgres
                : $"Data Source={Path.Combine(sqliteDirectory, "results.db")}",
        }, builder => builder.AddResultsStore());
        hosts.Add(host);
        return host;
    }
}
