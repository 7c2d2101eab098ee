using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using WinTok.Contracts;

namespace WinTok.Messaging;

/// <summary>
/// The one-machine queue: an in-memory channel behind the same publisher abstraction. Nothing survives the process;
/// the results database is what makes a rerun resume. Dead letters are kept in <see cref="DeadLetters"/> and logged.
/// </summary>
public sealed class InProcessJobQueue<TMessage>(ILogger<InProcessJobQueue<TMessage>> logger) : IMessagePublisher<TMessage>, IDeadLetters
    where TMessage : class, IJobMessage
{
    private readonly Channel<InProcessDelivery<TMessage>> channel = Channel.CreateUnbounded<InProcessDelivery<TMessage>>();
    private readonly ConcurrentQueue<DeadLetter<TMessage>> deadLetters = new();

    internal ChannelReader<InProcessDelivery<TMessage>> Reader => channel.Reader;

    /// <summary>Messages given up on, oldest first.</summary>
    public IReadOnlyCollection<DeadLetter<TMessage>> DeadLetters => deadLetters;

    IReadOnlyList<DeadLetter<IJobMessage>> IDeadLetters.All =>
        deadLetters.Select(d => new DeadLetter<IJobMessage>(d.Message, d.Reason, d.DeliveryCount)).ToList();

    /// <summary>Messages waiting (not counting those being handled).</summary>
    public int Count => channel.Reader.Count;

    public async Task PublishAsync(TMessage message, CancellationToken cancellationToken)
    {
        await channel.Writer.WriteAsync(new InProcessDelivery<TMessage>(message, $"{message.JobId:N}-{message.Partition}-{message.Attempt}", 0, DateTimeOffset.UtcNow), cancellationToken);
        Log.PublishedMessage(logger, "in-process", message.JobId, message.Partition, message.Attempt);
    }

    public async Task PublishManyAsync(IReadOnlyCollection<TMessage> messages, CancellationToken cancellationToken)
    {
        foreach (var message in messages)
        {
            await PublishAsync(message, cancellationToken);
        }
    }

    internal ValueTask RequeueAsync(InProcessDelivery<TMessage> delivery) =>
        channel.Writer.WriteAsync(delivery with { DeliveryCount = delivery.DeliveryCount + 1 });

    internal void DeadLetter(InProcessDelivery<TMessage> delivery, string reason)
    {
        deadLetters.Enqueue(new DeadLetter<TMessage>(delivery.Message, reason, delivery.DeliveryCount));
        Log.DeadLetteredMessage(logger, "in-process", delivery.MessageId, reason);
    }
}

/// <summary>Publishes into the process's <see cref="InProcessJobQueue{TMessage}"/> singleton.</summary>
internal sealed class InProcessPublisher<TMessage>(InProcessJobQueue<TMessage> queue) : IMessagePublisher<TMessage>
    where TMessage : class, IJobMessage
{
    public Task PublishAsync(TMessage message, CancellationToken cancellationToken) => queue.PublishAsync(message, cancellationToken);

    public Task PublishManyAsync(IReadOnlyCollection<TMessage> messages, CancellationToken cancellationToken) =>
        queue.PublishManyAsync(messages, cancellationToken);
}

internal sealed record InProcessDelivery<TMessage>(TMessage Message, string MessageId, int DeliveryCount, DateTimeOffset? PublishedAt = null);

/// <summary>A message the in-process queue gave up on, with why.</summary>
public sealed record DeadLetter<TMessage>(TMessage Message, string Reason, int DeliveryCount);

/// <summary>
/// The dead letters of the in-process queues, whatever their message type: on one machine nobody reads a dead-letter
/// queue, so the local job runner records them as failed partitions instead.
/// </summary>
public interface IDeadLetters
{
    /// <summary>Messages given up on, oldest first.</summary>
    IReadOnlyList<DeadLetter<IJobMessage>> All { get; }
}
