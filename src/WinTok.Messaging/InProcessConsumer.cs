using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Contracts;

namespace WinTok.Messaging;

/// <summary>
/// Consumes an <see cref="InProcessJobQueue{TMessage}"/> with <see cref="JobQueueOptions.PrefetchCount"/> handlers at
/// once and the same outcome rules as the RabbitMQ consumer: a failure or RetryLater requeues until the delivery limit,
/// then dead-letters; Poison dead-letters at once. Shutdown drains like the RabbitMQ consumer.
/// </summary>
internal sealed class InProcessConsumer<TMessage>(
    InProcessJobQueue<TMessage> queue,
    IServiceScopeFactory scopes,
    IOptions<JobQueueOptions> options,
    TimeProvider timeProvider,
    ILogger<InProcessConsumer<TMessage>> logger) : BackgroundService
    where TMessage : class, IJobMessage
{
    private const string QueueName = "in-process";
    private readonly JobQueueOptions settings = options.Value;
    private readonly CancellationTokenSource handlerStop = new();
    private int inFlight;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        Log.ConsumerDraining(logger, QueueName, Volatile.Read(ref inFlight), (long)settings.DrainTimeout.TotalMilliseconds);
        var stopped = base.StopAsync(cancellationToken);
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (await Task.WhenAny(stopped, Task.Delay(settings.DrainTimeout, timeProvider, drain.Token)) != stopped)
        {
            await handlerStop.CancelAsync();
        }
        await drain.CancelAsync();
        await stopped;
        Log.ConsumerStopped(logger, QueueName);
    }

    public override void Dispose()
    {
        handlerStop.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Log.ConsumerStarted(logger, QueueName, settings.PrefetchCount, settings.DeliveryLimit);
        var loops = Enumerable.Range(0, settings.PrefetchCount).Select(_ => ConsumeAsync(stoppingToken));
        await Task.WhenAll(loops);
    }

    private async Task ConsumeAsync(CancellationToken stoppingToken)
    {
        while (await WaitToReadAsync(stoppingToken))
        {
            if (!queue.Reader.TryRead(out var delivery))
            {
                continue;
            }
            Interlocked.Increment(ref inFlight);
            try
            {
                await HandleAsync(delivery);
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        }
    }

    private async Task<bool> WaitToReadAsync(CancellationToken stoppingToken)
    {
        try
        {
            return await queue.Reader.WaitToReadAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task HandleAsync(InProcessDelivery<TMessage> delivery)
    {
        var message = delivery.Message;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(handlerStop.Token);
        timeout.CancelAfter(settings.HandlerTimeoutOf<TMessage>());
        var started = Stopwatch.GetTimestamp();
        Log.HandlingMessage(logger, QueueName, message.JobId, message.Partition, message.Attempt, delivery.DeliveryCount);
        HandlerOutcome outcome;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var handler = scope.ServiceProvider.GetRequiredService<IMessageHandler<TMessage>>();
            outcome = await handler.HandleAsync(message, new MessageContext(delivery.MessageId, delivery.DeliveryCount, IsLastDelivery: delivery.DeliveryCount + 1 >= settings.DeliveryLimit, delivery.PublishedAt), timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Log.HandlerCancelled(logger, QueueName, message.JobId, message.Partition, handlerStop.IsCancellationRequested ? "shutdown" : "handler timeout");
            await RetryOrDeadLetterAsync(delivery, "Cancelled");
            return;
        }
        catch (Exception exception)
        {
            Log.HandlerFailed(logger, exception, QueueName, message.JobId, message.Partition, delivery.DeliveryCount);
            await RetryOrDeadLetterAsync(delivery, $"{exception.GetType().Name}: {exception.Message}");
            return;
        }

        switch (outcome.Kind)
        {
            case HandlerOutcomeKind.Done:
                Log.HandledMessage(logger, QueueName, message.JobId, message.Partition, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                break;
            case HandlerOutcomeKind.RetryLater:
                Log.MessageRetryLater(logger, QueueName, message.JobId, message.Partition, outcome.Reason);
                await Task.Delay(settings.RetryLaterDelay, timeProvider);
                await RetryOrDeadLetterAsync(delivery, outcome.Reason ?? "Retry later");
                break;
            default:
                queue.DeadLetter(delivery, outcome.Reason ?? "Poison message");
                break;
        }
    }

    private async Task RetryOrDeadLetterAsync(InProcessDelivery<TMessage> delivery, string reason)
    {
        // Same arithmetic as a quorum queue: dead-lettered once returned more than DeliveryLimit times.
        if (delivery.DeliveryCount + 1 > settings.DeliveryLimit)
        {
            queue.DeadLetter(delivery, $"Delivery limit {settings.DeliveryLimit} reached; last failure: {reason}");
            return;
        }
        await queue.RequeueAsync(delivery);
    }
}
