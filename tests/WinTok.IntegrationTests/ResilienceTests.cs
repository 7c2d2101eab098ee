using Azure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using RabbitMQ.Client.Exceptions;
using WinTok.Data.Corpus;
using WinTok.Results;
using WinTok.Messaging;
using WinTok.Jobs;
using WinTok.Worker.Hosting;
using WinTok.ServiceDefaults;

namespace WinTok.IntegrationTests;

/// <summary>The retry pipelines on a fake clock, options validation at start, and a database call across a PostgreSQL restart.</summary>
[Collection(ServicesCollection.Name)]
public sealed class ResilienceTests(ServicesFixture services)
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BlobPipeline_WhenServerAnswers503ThenSucceeds_RetriesWithBackoffOnTheInjectedClock()
    {
        var clock = new FakeTimeProvider();
        var pipeline = ResiliencePipelineFactory.Create("Blob", new RetryPipelineOptions(), BlobFileStore.IsTransient, clock, NullLogger.Instance);
        var calls = 0;

        var running = pipeline.ExecuteAsync(_ => ++calls < 3 ? throw new RequestFailedException(503, "Server busy") : ValueTask.FromResult(calls), Token).AsTask();
        while (!running.IsCompleted)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(5, Token);
        }

        Assert.Equal(3, await running);
    }

    [Fact]
    public async Task Pipelines_WhenFailureIsPermanentOrCancellation_DoNotRetry()
    {
        var clock = new FakeTimeProvider();
        var options = new RetryPipelineOptions();
        var blob = ResiliencePipelineFactory.Create("Blob", options, BlobFileStore.IsTransient, clock, NullLogger.Instance);
        var broker = ResiliencePipelineFactory.Create(RabbitMqConnection.PipelineKey, options, RabbitMqConnection.IsTransient, clock, NullLogger.Instance);
        var calls = 0;

        await Assert.ThrowsAsync<RequestFailedException>(() => blob.ExecuteAsync(_ => { calls++; throw new RequestFailedException(404, "Not found"); }, Token).AsTask());
        await Assert.ThrowsAsync<OperationCanceledException>(() => blob.ExecuteAsync(_ => { calls++; throw new OperationCanceledException(); }, Token).AsTask());
        await Assert.ThrowsAsync<InvalidOperationException>(() => broker.ExecuteAsync(_ => { calls++; throw new InvalidOperationException(); }, Token).AsTask());

        Assert.Equal(3, calls);
        Assert.True(RabbitMqConnection.IsTransient(new AlreadyClosedException(new RabbitMQ.Client.Events.ShutdownEventArgs(RabbitMQ.Client.ShutdownInitiator.Peer, 320, "CONNECTION_FORCED"))));
        Assert.True(BlobFileStore.IsTransient(new RequestFailedException(429, "Too many requests")));
        Assert.False(ResultsDatabase.IsTransient(new PostgresException("duplicate key", "ERROR", "ERROR", "23505")));
        Assert.True(ResultsDatabase.IsTransient(new PostgresException("deadlock detected", "ERROR", "ERROR", "40P01")));
    }

    [Fact]
    public async Task Host_WhenAnOptionIsOutOfRange_FailsAtStart()
    {
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["JobQueue:Transport"] = "InProcess",
            ["JobQueue:DeliveryLimit"] = "0",
            ["Resilience:Broker:MaxRetryAttempts"] = "-1",
        }, builder => builder.AddJobQueue());

        var error = await Assert.ThrowsAsync<AggregateException>(() => host.StartAsync(Token));

        Assert.All(error.InnerExceptions, inner => Assert.IsType<OptionsValidationException>(inner));
        Assert.Contains("DeliveryLimit must be between 1 and 1000", error.Message);
        Assert.Contains("Broker.MaxRetryAttempts must be between 1 and 100", error.Message);
    }

    [Fact]
    public async Task Repository_WhenPostgresRestartsDuringACall_RetriesUntilItIsBack()
    {
        await services.RequirePostgresAsync();
        await services.ResetPostgresAsync();
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Postgres",
            ["ResultsDatabase:ConnectionString"] = services.Postgres,
            ["Resilience:Database:MaxDelay"] = "00:00:01",
            ["Resilience:Database:MaxRetryAttempts"] = "60",
        }, builder => builder.AddResultsStore());
        await host.StartAsync(Token); // migrates
        var results = host.Services.GetRequiredService<ResultsRepository>();
        var jobId = Guid.NewGuid();

        await ServicesFixture.RunServicesScriptAsync("stop-one postgres");
        Task<bool> creating;
        try
        {
            creating = results.CreateJobAsync(new NewJob(jobId, "tokenize", "{}"), Token);
            await Task.Delay(TimeSpan.FromSeconds(2), Token);
            Assert.False(creating.IsCompleted);
        }
        finally
        {
            // The shared server is started again even when the test fails here: the other tests need it.
            await ServicesFixture.RunServicesScriptAsync("start-one postgres", cancellationToken: CancellationToken.None);
        }

        Assert.True(await creating);
        Assert.Equal(JobStatus.Queued, (await results.GetJobAsync(jobId, Token))!.Status);
        await host.StopAsync(Token);
    }
}
