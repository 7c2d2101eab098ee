using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using WinTok.Contracts;

namespace WinTok.Messaging;

/// <summary>
/// The one class that consumes RabbitMQ. <see cref="StartAsync"/> declares the topology, sets the prefetch and
/// subscribes with manual acks. Per delivery: copy the body (it is only valid inside the callback), deserialize with
/// the source-generated contract, open a DI scope, call <see cref="IMessageHandler{TMessage}"/>, then settle:
/// <list type="bullet">
/// <item>Done: ack, after the handler has recorded its result.</item>
/// <item>Malformed JSON or Poison: dead-letter with the reason (below), then ack.</item>
/// <item>RetryLater, an exception, handler timeout or shutdown: nack with requeue; the quorum queue's delivery
/// limit dead-letters a message that keeps failing.</item>
/// </list>
/// A malformed or poison message is republished (confirmed) to the dead-letter exchange with an
/// <c>x-wintok-reason</c> header and the original then acked, rather than rejected: a reject would put a second,
/// reasonless copy in the dead-letter queue, and rejecting first would lose the reason if the process died between.
/// On shutdown the consumer is cancelled first (no new deliveries), in-flight handlers get
/// <see cref="JobQueueOptions.DrainTimeout"/> to finish, then are cancelled and their messages requeued.
/// </summary>
internal sealed class RabbitMqConsumer<TMessage>(
    RabbitMqConnection connection,
    IServiceScopeFactory scopes,
    IOptions<JobQueueOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider timeProvider,
    ILogger<RabbitMqConsumer<TMessage>> logger) : BackgroundService
    where TMessage : class, IJobMessage
{
    private readonly JobQueueOptions settings = options.Value;
    private readonly QueueNames names = QueueNames.For<TMessage>(options.Value.QueuePrefix);
    private readonly JsonTypeInfo<TMessage> typeInfo = MessageJson.TypeInfo<TMessage>();
    private readonly CancellationTokenSource handlerStop = new();
    private IChannel? channel;
    private string? consumerTag;
    private int inFlight;
    private volatile bool stopping;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var open = await connection.GetAsync(cancellationToken);
        channel = await open.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true,
                consumerDispatchConcurrency: settings.PrefetchCount),
            cancellationToken);
        channel.ChannelShutdownAsync += OnChannelShutdownAsync;
        await RabbitMqTopology.DeclareAsync(channel, names, settings, cancellationToken);
        await channel.BasicQosAsync(prefetchSize: 0, prefetchCount: settings.PrefetchCount, global: false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += OnReceivedAsync;
        consumerTag = await channel.BasicConsumeAsync(names.Queue, autoAck: false, consumer, cancellationToken);
        Log.ConsumerStarted(logger, names.Queue, settings.PrefetchCount, settings.DeliveryLimit);
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        stopping = true;
        if (channel is { IsOpen: true } open && consumerTag is not null)
        {
            await open.BasicCancelAsync(consumerTag, noWait: false, cancellationToken);
        }
        Log.ConsumerDraining(logger, names.Queue, Volatile.Read(ref inFlight), (long)settings.DrainTimeout.TotalMilliseconds);
        if (!await WaitForIdleAsync(settings.DrainTimeout, cancellationToken))
        {
            await handlerStop.CancelAsync();
            await WaitForIdleAsync(TimeSpan.FromSeconds(10), cancellationToken);
        }
        await base.StopAsync(cancellationToken);
        if (channel is { } closing)
        {
            await RabbitMqShutdown.CloseAsync(closing);
        }
        Log.ConsumerStopped(logger, names.Queue);
    }

    public override void Dispose()
    {
        channel?.Dispose();
        handlerStop.Dispose();
        base.Dispose();
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Deliveries arrive through OnReceivedAsync; this only keeps the service alive until the host stops.
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        stoppingToken.Register(() => stopped.TrySetResult());
        return stopped.Task;
    }

    private async Task OnReceivedAsync(object sender, BasicDeliverEventArgs delivery)
    {
        Interlocked.Increment(ref inFlight);
        try
        {
            await HandleDeliveryAsync(channel!, delivery);
        }
        finally
        {
            Interlocked.Decrement(ref inFlight);
        }
    }

    private async Task HandleDeliveryAsync(IChannel deliveryChannel, BasicDeliverEventArgs delivery)
    {
        var generation = connection.Generation;
        var body = delivery.Body.ToArray();
        var deliveryCount = DeliveryCount(delivery.BasicProperties);
        var messageId = delivery.BasicProperties.MessageId ?? "";

        TMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(body, typeInfo);
        }
        catch (JsonException exception)
        {
            Log.MalformedMessage(logger, exception, names.Queue, messageId);
            await DeadLetterAsync(deliveryChannel, delivery, body, deliveryCount, $"Malformed message: {exception.Message}", generation);
            return;
        }
        if (message is null)
        {
            await DeadLetterAsync(deliveryChannel, delivery, body, deliveryCount, "Malformed message: JSON null", generation);
            return;
        }

        if (stopping)
        {
            // Delivered between the cancel request and its confirmation: hand it straight back.
            await SettleAsync(deliveryChannel, delivery, generation, ack: false);
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(handlerStop.Token);
        timeout.CancelAfter(settings.HandlerTimeoutOf<TMessage>());
        var started = Stopwatch.GetTimestamp();
        Log.HandlingMessage(logger, names.Queue, message.JobId, message.Partition, message.Attempt, deliveryCount);
        HandlerOutcome outcome;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var handler = scope.ServiceProvider.GetRequiredService<IMessageHandler<TMessage>>();
            outcome = await handler.HandleAsync(message, new MessageContext(messageId, deliveryCount, IsLastDelivery: deliveryCount + 1 >= settings.DeliveryLimit,
                PublishedAt: delivery.BasicProperties.IsTimestampPresent() ? DateTimeOffset.FromUnixTimeSeconds(delivery.BasicProperties.Timestamp.UnixTime) : null), timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Log.HandlerCancelled(logger, names.Queue, message.JobId, message.Partition, handlerStop.IsCancellationRequested ? "shutdown" : "handler timeout");
            await SettleAsync(deliveryChannel, delivery, generation, ack: false);
            return;
        }
        catch (Exception exception)
        {
            // Not ours to judge: requeue, and let the delivery limit dead-letter a message that always fails.
            Log.HandlerFailed(logger, exception, names.Queue, message.JobId, message.Partition, deliveryCount);
            await SettleAsync(deliveryChannel, delivery, generation, ack: false);
            return;
        }

        var elapsedMs = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        switch (outcome.Kind)
        {
            case HandlerOutcomeKind.Done:
                await SettleAsync(deliveryChannel, delivery, generation, ack: true);
                Log.HandledMessage(logger, names.Queue, message.JobId, message.Partition, elapsedMs);
                break;
            case HandlerOutcomeKind.RetryLater:
                Log.MessageRetryLater(logger, names.Queue, message.JobId, message.Partition, outcome.Reason);
                await Task.Delay(settings.RetryLaterDelay, timeProvider);
                await SettleAsync(deliveryChannel, delivery, generation, ack: false);
                break;
            default:
                await DeadLetterAsync(deliveryChannel, delivery, body, deliveryCount, outcome.Reason ?? "Poison message", generation);
                break;
        }
    }

    private async Task DeadLetterAsync(
        IChannel deliveryChannel, BasicDeliverEventArgs delivery, byte[] body, int deliveryCount, string reason, int generation)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = delivery.BasicProperties.ContentType,
            MessageId = delivery.BasicProperties.MessageId,
            Type = delivery.BasicProperties.Type,
            Headers = new Dictionary<string, object?>
            {
                [DeadLetterHeaders.Reason] = reason,
                [DeadLetterHeaders.SourceQueue] = names.Queue,
                [DeadLetterHeaders.DeliveryCount] = deliveryCount,
                [DeadLetterHeaders.DeadLetteredAt] = timeProvider.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
            },
        };
        try
        {
            await deliveryChannel.BasicPublishAsync(names.DeadLetterExchange, names.Queue, mandatory: true, properties, body, CancellationToken.None);
        }
        catch (Exception exception) when (exception is AlreadyClosedException or OperationInterruptedException or PublishException)
        {
            // Not dead-lettered: leave the message where it is; it comes back and is judged again.
            Log.DeadLetterPublishFailed(logger, exception, names.Queue, delivery.BasicProperties.MessageId);
            await SettleAsync(deliveryChannel, delivery, generation, ack: false);
            return;
        }
        Log.DeadLetteredMessage(logger, names.Queue, delivery.BasicProperties.MessageId, reason);
        await SettleAsync(deliveryChannel, delivery, generation, ack: true);
    }

    private async Task SettleAsync(IChannel deliveryChannel, BasicDeliverEventArgs delivery, int generation, bool ack)
    {
        if (generation != connection.Generation || deliveryChannel.IsClosed)
        {
            // The channel this delivery came on is gone; the broker has already requeued the message.
            Log.SettlementLost(logger, names.Queue, delivery.BasicProperties.MessageId, ack ? "ack" : "nack");
            return;
        }
        try
        {
            if (ack)
            {
                await deliveryChannel.BasicAckAsync(delivery.DeliveryTag, multiple: false, CancellationToken.None);
            }
            else
            {
                await deliveryChannel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, CancellationToken.None);
            }
        }
        catch (AlreadyClosedException)
        {
            Log.SettlementLost(logger, names.Queue, delivery.BasicProperties.MessageId, ack ? "ack" : "nack");
        }
    }

    private Task OnChannelShutdownAsync(object sender, ShutdownEventArgs args)
    {
        // A connection loss is recovered by the client. A channel closed by the broker while the connection stays up
        // (e.g. consumer_timeout) is not: stop the host so the orchestrator restarts a healthy worker.
        if (!stopping && args.Initiator == ShutdownInitiator.Peer && args.ReplyCode != 320 && connection.IsConnectionOpen)
        {
            Log.ConsumerChannelClosed(logger, names.Queue, args.ReplyCode, args.ReplyText);
            lifetime.StopApplication();
        }
        return Task.CompletedTask;
    }

    private async Task<bool> WaitForIdleAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        var deadline = timeProvider.GetTimestamp() + (long)(limit.TotalSeconds * timeProvider.TimestampFrequency);
        while (Volatile.Read(ref inFlight) > 0)
        {
            if (timeProvider.GetTimestamp() >= deadline || cancellationToken.IsCancellationRequested)
            {
                return false;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), timeProvider, CancellationToken.None);
        }
        return true;
    }

    /// <summary>Quorum queues count failed deliveries in <c>x-delivery-count</c> (absent on the first delivery).</summary>
    private static int DeliveryCount(IReadOnlyBasicProperties properties) =>
        properties.Headers?.TryGetValue("x-delivery-count", out var value) == true
            ? value switch
            {
                long count => (int)count,
                int count => count,
                byte[] text => int.Parse(Encoding.UTF8.GetString(text), CultureInfo.InvariantCulture),
                _ => 0,
            }
            : 0;
}
