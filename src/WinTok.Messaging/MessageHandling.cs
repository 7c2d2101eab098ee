using WinTok.Contracts;

namespace WinTok.Messaging;

/// <summary>Handles one message type. Knows nothing of acks, retries or the transport: it returns what happened.</summary>
public interface IMessageHandler<in TMessage>
    where TMessage : class, IJobMessage
{
    /// <summary>
    /// Does the work and records its result durably before returning <see cref="HandlerOutcome.Done"/>: the message
    /// is acknowledged right after. An exception is a transient failure (the message is redelivered until the queue's
    /// delivery limit dead-letters it). <paramref name="cancellationToken"/> fires on shutdown after the drain time and
    /// at <c>JobQueue:HandlerTimeout</c>; the message then goes back to the queue.
    /// </summary>
    Task<HandlerOutcome> HandleAsync(TMessage message, MessageContext context, CancellationToken cancellationToken);
}

/// <summary>Delivery facts a handler may use (e.g. to log the attempt).</summary>
/// <param name="MessageId">The publisher's message id.</param>
/// <param name="DeliveryCount">How many earlier deliveries of this message failed or were returned (0 on the first).</param>
/// <param name="IsLastDelivery">
/// Whether the queue dead-letters the message if this delivery fails too, so a handler records a final failure instead
/// of throwing into the void; the transport knows its limit, the handler only this flag.
/// </param>
/// <param name="PublishedAt">When the message was first published (whole seconds over RabbitMQ), for queue-lag metrics; null when unknown.</param>
public sealed record MessageContext(string MessageId, int DeliveryCount, bool IsLastDelivery, DateTimeOffset? PublishedAt = null);

public enum HandlerOutcomeKind
{
    Done,
    RetryLater,
    Poison,
}

/// <summary>What a handler reports: done (ack), retry later (requeue, counts toward the delivery limit), or poison (dead-letter now, with the reason).</summary>
public readonly record struct HandlerOutcome(HandlerOutcomeKind Kind, string? Reason)
{
    public static HandlerOutcome Done { get; } = new(HandlerOutcomeKind.Done, null);

    public static HandlerOutcome RetryLater(string reason) => new(HandlerOutcomeKind.RetryLater, reason);

    public static HandlerOutcome Poison(string reason) => new(HandlerOutcomeKind.Poison, reason);
}

/// <summary>Publishes messages durably: when the returned task completes, the queue holds them.</summary>
public interface IMessagePublisher<in TMessage>
    where TMessage : class, IJobMessage
{
    Task PublishAsync(TMessage message, CancellationToken cancellationToken);

    /// <summary>Publishes many (e.g. one per partition of a new job); completes when all are confirmed.</summary>
    Task PublishManyAsync(IReadOnlyCollection<TMessage> messages, CancellationToken cancellationToken);
}
