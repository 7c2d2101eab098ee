using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RabbitMQ.Client;
using WinTok.Contracts;
using WinTok.Results;
using WinTok.Messaging;
using WinTok.Jobs;
using WinTok.Worker.Hosting;

namespace WinTok.IntegrationTests;

/// <summary>The RabbitMQ job queue against the real broker, and the in-process queue with the same outcome rules.</summary>
[Collection(ServicesCollection.Name)]
public sealed class JobQueueTests(ServicesFixture services) : IAsyncDisposable
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly List<IHost> hosts = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var host in hosts)
        {
            await host.StopAsync(CancellationToken.None);
            host.Dispose();
        }
    }

    [Fact]
    public async Task Consumer_WhenMessagesArePublished_HandlesEachAndAcksIt()
    {
        var (host, script) = await StartWorkerAsync("ack");
        var publisher = host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>();

        await publisher.PublishManyAsync([Message(0), Message(1), Message(2)], Token);

        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Count == 3), Patience));
        await host.StopAsync(Token); // unacked deliveries would go back to the queue here
        Assert.Equal(0u, await MessageCountAsync(Queue("ack")));
        Assert.Equal([0, 1, 2], script.Handled.Select(m => m.Partition).Order());
    }

    [Fact]
    public async Task Consumer_WhenMessageIsMalformed_DeadLettersItWithReasonAndGoesOn()
    {
        var (host, script) = await StartWorkerAsync("malformed");
        var publisher = host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>();

        await PublishRawAsync(Queue("malformed"), "{\"jobId\": \"not-a-guid\""u8.ToArray());
        await PublishRawAsync(Queue("malformed"), "{\"partition\": 3}"u8.ToArray()); // required members missing
        await publisher.PublishAsync(Message(4), Token);

        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Count == 1), Patience));
        var deadLetters = await DrainDeadLettersAsync("malformed", expected: 2);
        Assert.All(deadLetters, letter => Assert.StartsWith("Malformed message:", letter.Reason));
        Assert.Contains(deadLetters, letter => letter.Body == "{\"partition\": 3}");
        Assert.Equal(4, Assert.Single(script.Handled).Partition);
    }

    [Fact]
    public async Task Consumer_WhenHandlerReturnsPoison_DeadLettersItWithTheHandlersReason()
    {
        var (host, script) = await StartWorkerAsync("poison");
        script.Behaviour = (message, _, _) => Task.FromResult(message.Partition == 1
            ? HandlerOutcome.Poison("unknown model version 'v9'")
            : HandlerOutcome.Done);
        var publisher = host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>();

        await publisher.PublishManyAsync([Message(1), Message(2)], Token);

        var letter = Assert.Single(await DrainDeadLettersAsync("poison", expected: 1));
        Assert.Equal("unknown model version 'v9'", letter.Reason);
        Assert.Contains("\"partition\":1", letter.Body);
        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Any(m => m.Partition == 2)), Patience));
    }

    [Fact]
    public async Task Consumer_WhenHandlerAlwaysThrows_BrokerDeadLettersAfterTheDeliveryLimit()
    {
        var (host, script) = await StartWorkerAsync("throws", deliveryLimit: 2);
        script.Behaviour = (message, _, _) => message.Partition == 5
            ? throw new InvalidDataException("boom")
            : Task.FromResult(HandlerOutcome.Done);
        var publisher = host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>();

        await publisher.PublishManyAsync([Message(5), Message(6)], Token);

        var letter = Assert.Single(await DrainDeadLettersAsync("throws", expected: 1));
        Assert.Contains("\"partition\":5", letter.Body);
        Assert.Equal("delivery_limit", letter.DeathReason);
        var attempts = script.Calls.Count(m => m.Partition == 5);
        Assert.InRange(attempts, 2, 3); // the first delivery plus DeliveryLimit returns, by the broker's count
        Assert.Contains(script.Handled, m => m.Partition == 6);
    }

    [Fact]
    public async Task Consumer_WhenAnotherConsumerDiedWithoutAck_GetsTheMessageRedelivered()
    {
        await services.RequireRabbitMqAsync();
        await services.ResetQueuesAsync(Queue("redelivery"), Queue("redelivery") + ".dead");
        var publisherHost = await StartHostAsync("redelivery", consume: false);
        await publisherHost.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>().PublishAsync(Message(8), Token);

        // A worker takes the message and dies (connection dropped) before acking it.
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq), AutomaticRecoveryEnabled = false };
        var doomed = await factory.CreateConnectionAsync(Token);
        var channel = await doomed.CreateChannelAsync(cancellationToken: Token);
        Assert.NotNull(await channel.BasicGetAsync(Queue("redelivery"), autoAck: false, Token));
        await doomed.AbortAsync(Token);
        doomed.Dispose();

        var (_, script) = await StartWorkerAsync("redelivery", reset: false);
        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Count == 1), Patience));
        Assert.Equal(1, script.Contexts.Single().DeliveryCount);
    }

    [Fact]
    public async Task Consumer_WhenHostStopsDuringAHandler_LetsItFinishWithinTheDrainTime()
    {
        var (host, script) = await StartWorkerAsync("drain", drainTimeout: TimeSpan.FromSeconds(10));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        script.Behaviour = async (_, _, cancellationToken) =>
        {
            await release.Task.WaitAsync(cancellationToken);
            return HandlerOutcome.Done;
        };
        await host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>().PublishAsync(Message(9), Token);
        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(!script.Calls.IsEmpty), Patience));

        var stopping = host.StopAsync(Token);
        await Task.Delay(500, Token);
        release.SetResult();
        await stopping;

        Assert.Single(script.Handled);
        Assert.Equal(0u, await MessageCountAsync(Queue("drain")));
    }

    [Fact]
    public async Task Consumer_WhenHandlerOutlastsTheDrainTime_CancelsItAndRequeuesTheMessage()
    {
        var (host, script) = await StartWorkerAsync("requeue", drainTimeout: TimeSpan.FromSeconds(1));
        script.Behaviour = async (_, _, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return HandlerOutcome.Done;
        };
        await host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>().PublishAsync(Message(10), Token);
        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(!script.Calls.IsEmpty), Patience));

        await host.StopAsync(Token);

        Assert.Empty(script.Handled);
        Assert.True(await ServicesFixture.EventuallyAsync(async () => await MessageCountAsync(Queue("requeue")) == 1, Patience));
    }

    [Fact]
    public async Task Consumer_WhenBrokerRestarts_RecoversAndHandlesNewMessages()
    {
        var (host, script) = await StartWorkerAsync("restart");
        var publisher = host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>();
        await publisher.PublishAsync(Message(11), Token);
        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Count == 1), Patience));

        await ServicesFixture.RunServicesScriptAsync("restart rabbitmq");
        await publisher.PublishAsync(Message(12), Token); // retried by the broker pipeline until the connection is back

        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(script.Handled.Any(m => m.Partition == 12)), TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public async Task InProcessConsumer_AppliesTheSameOutcomeRules()
    {
        var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["JobQueue:Transport"] = "InProcess",
            ["JobQueue:PrefetchCount"] = "2",
            ["JobQueue:DeliveryLimit"] = "2",
            ["JobQueue:RetryLaterDelay"] = "00:00:00",
        }, builder =>
        {
            builder.Services.AddSingleton<HandlerScript>();
            builder.AddJobQueue().Handle<TokenizePartition, ScriptedHandler>();
        });
        hosts.Add(host);
        var script = host.Services.GetRequiredService<HandlerScript>();
        script.Behaviour = (message, _, _) => message.Partition switch
        {
            1 => Task.FromResult(HandlerOutcome.Poison("bad spec")),
            2 => throw new InvalidDataException("boom"),
            3 => Task.FromResult(HandlerOutcome.RetryLater("lease held elsewhere")),
            _ => Task.FromResult(HandlerOutcome.Done),
        };
        await host.StartAsync(Token);
        var queue = host.Services.GetRequiredService<InProcessJobQueue<TokenizePartition>>();

        await host.Services.GetRequiredService<IMessagePublisher<TokenizePartition>>().PublishManyAsync([Message(0), Message(1), Message(2), Message(3)], Token);

        Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(queue.DeadLetters.Count == 3), Patience));
        Assert.Equal([0], script.Handled.Select(m => m.Partition));
        var reasons = queue.DeadLetters.ToDictionary(letter => letter.Message.Partition, letter => letter.Reason);
        Assert.Equal("bad spec", reasons[1]);
        Assert.StartsWith("Delivery limit 2 reached; last failure: InvalidDataException: boom", reasons[2]);
        Assert.StartsWith("Delivery limit 2 reached; last failure: lease held elsewhere", reasons[3]);
        Assert.Equal(3, script.Calls.Count(m => m.Partition == 2));
    }

    private static string Queue(string test) => $"test-{test}.tokenize-partition";

    private static TokenizePartition Message(int partition) =>
        new(Guid.Parse("6f1c1d2e-0000-4000-8000-000000000001"), partition, Attempt: 1);

    private async Task<(IHost Host, HandlerScript Script)> StartWorkerAsync(
        string test, int deliveryLimit = 5, TimeSpan? drainTimeout = null, bool reset = true)
    {
        await services.RequireRabbitMqAsync();
        if (reset)
        {
            await services.ResetQueuesAsync(Queue(test), Queue(test) + ".dead");
        }
        var host = await StartHostAsync(test, consume: true, deliveryLimit, drainTimeout);
        return (host, host.Services.GetRequiredService<HandlerScript>());
    }

    private async Task<IHost> StartHostAsync(string test, bool consume, int deliveryLimit = 5, TimeSpan? drainTimeout = null)
    {
        var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["JobQueue:ConnectionString"] = services.RabbitMq,
            ["JobQueue:QueuePrefix"] = $"test-{test}",
            ["JobQueue:DeliveryLimit"] = deliveryLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["JobQueue:DrainTimeout"] = (drainTimeout ?? TimeSpan.FromSeconds(5)).ToString(),
            ["JobQueue:RetryLaterDelay"] = "00:00:00.100",
            ["Resilience:Broker:MaxDelay"] = "00:00:01",
            ["Resilience:Broker:TotalTimeout"] = "00:01:30",
            ["Resilience:Broker:MaxRetryAttempts"] = "100",
        }, builder =>
        {
            builder.Services.AddSingleton<HandlerScript>();
            var queue = builder.AddJobQueue();
            if (consume)
            {
                queue.Handle<TokenizePartition, ScriptedHandler>();
            }
        });
        hosts.Add(host);
        await host.StartAsync(Token);
        return host;
    }

    private async Task PublishRawAsync(string queue, byte[] body)
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true), Token);
        await channel.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true, MessageId = "raw" }, body, Token);
    }

    private async Task<uint> MessageCountAsync(string queue)
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: Token);
        return (await channel.QueueDeclarePassiveAsync(queue, Token)).MessageCount;
    }

    /// <summary>Waits for <paramref name="expected"/> dead letters of the test's queue and takes them off the dead-letter queue.</summary>
    private async Task<List<DeadLetterSeen>> DrainDeadLettersAsync(string test, int expected)
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: Token);
        var letters = new List<DeadLetterSeen>();
        await ServicesFixture.EventuallyAsync(async () =>
        {
            while (await channel.BasicGetAsync(Queue(test) + ".dead", autoAck: true, Token) is { } result)
            {
                var headers = result.BasicProperties.Headers ?? new Dictionary<string, object?>();
                letters.Add(new DeadLetterSeen(
                    Encoding.UTF8.GetString(result.Body.Span),
                    headers.TryGetValue(DeadLetterHeaders.Reason, out var reason) ? Text(reason) : null,
                    headers.TryGetValue("x-death", out var death) && death is List<object> deaths && deaths[0] is IDictionary<string, object?> first
                        ? Text(first["reason"])
                        : null));
            }
            return letters.Count >= expected;
        }, Patience);
        Assert.Equal(expected, letters.Count);
        return letters;

        static string? Text(object? value) => value switch
        {
            byte[] bytes => Encoding.UTF8.GetString(bytes),
            null => null,
            _ => value.ToString(),
        };
    }

    private sealed record DeadLetterSeen(string Body, string? Reason, string? DeathReason);
}

/// <summary>What the test's handler does and what it saw; one per host.</summary>
internal sealed class HandlerScript
{
    public ConcurrentQueue<TokenizePartition> Calls { get; } = new();

    public ConcurrentQueue<TokenizePartition> Handled { get; } = new();

    public ConcurrentQueue<MessageContext> Contexts { get; } = new();

    public Func<TokenizePartition, MessageContext, CancellationToken, Task<HandlerOutcome>> Behaviour { get; set; } =
        (_, _, _) => Task.FromResult(HandlerOutcome.Done);
}

internal sealed class ScriptedHandler(HandlerScript script) : IMessageHandler<TokenizePartition>
{
    public async Task<HandlerOutcome> HandleAsync(TokenizePartition message, MessageContext context, CancellationToken cancellationToken)
    {
        script.Calls.Enqueue(message);
        script.Contexts.Enqueue(context);
        var outcome = await script.Behaviour(message, context, cancellationToken);
        if (outcome.Kind == HandlerOutcomeKind.Done)
        {
            script.Handled.Enqueue(message);
        }
        return outcome;
    }
}
