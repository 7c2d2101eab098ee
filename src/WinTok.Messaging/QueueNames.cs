using System.Text;

namespace WinTok.Messaging;

/// <summary>Names of the broker objects of one message type: <c>wintok.tokenize-partition</c>, <c>wintok.tokenize-partition.dead</c>, <c>wintok.dead-letter</c>.</summary>
internal sealed record QueueNames(string Queue, string DeadLetterQueue, string DeadLetterExchange)
{
    public static QueueNames For<TMessage>(string prefix)
    {
        var queue = $"{prefix}.{KebabCase(typeof(TMessage).Name)}";
        return new QueueNames(queue, queue + ".dead", $"{prefix}.dead-letter");
    }

    private static string KebabCase(string name)
    {
        var builder = new StringBuilder(name.Length + 8);
        foreach (var c in name)
        {
            if (char.IsUpper(c) && builder.Length > 0)
            {
                builder.Append('-');
            }
            builder.Append(char.ToLowerInvariant(c));
        }
        return builder.ToString();
    }
}
