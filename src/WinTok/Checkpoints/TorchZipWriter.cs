using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace WinTok.Checkpoints;

/// <summary>
/// Writes a zip the way PyTorch's <c>PyTorchStreamWriter</c> does (caffe2/serialize/inline_container.cc): every
/// record stored uncompressed under one archive folder, its data starting at a multiple of 64 bytes (the padding
/// goes in an <c>FB</c> extra field of the local header, so that <c>torch.load(mmap=True)</c> can map storages in
/// place), ZIP64 records once a size or offset passes 4 GiB.
/// </summary>
/// <remarks>Layout per PKWARE APPNOTE 6.3: local headers and data, then the central directory and its end records.</remarks>
internal sealed class TorchZipWriter
{
    private const int Alignment = 64;
    private const ushort PaddingExtraId = 0x4246;   // "FB", as torch names its alignment field
    private const ushort Zip64ExtraId = 0x0001;
    private const ushort VersionZip64 = 45;
    private const ushort VersionStored = 20;
    private const ushort DosDate1980 = (0 << 9) | (1 << 5) | 1;

    private readonly Stream output;
    private readonly string archiveName;
    private readonly long zip64Threshold;
    private readonly List<(byte[] Name, uint Crc, long Size, long Offset)> records = [];

    /// <param name="output">A seekable stream positioned at the start of the file.</param>
    /// <param name="archiveName">The folder holding every record (torch.save writes "archive" for streams).</param>
    /// <param name="zip64Threshold">Sizes and offsets from here on use ZIP64 fields; lowered only by tests.</param>
    public TorchZipWriter(Stream output, string archiveName, long zip64Threshold = uint.MaxValue)
    {
        if (!output.CanSeek)
        {
            throw new ArgumentException("The zip writer patches CRCs in place and needs a seekable stream", nameof(output));
        }
        this.output = output;
        this.archiveName = archiveName;
        this.zip64Threshold = zip64Threshold;
    }

    public void WriteRecord(string name, byte[] data) => WriteRecord(name, data.Length, stream => stream.Write(data));

    /// <summary>Writes record <c>&lt;archive&gt;/<paramref name="name"/></c>; <paramref name="writeData"/> must write exactly <paramref name="size"/> bytes.</summary>
    public void WriteRecord(string name, long size, Action<Stream> writeData)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes($"{archiveName}/{name}");
        long offset = output.Position;
        bool zip64 = size >= zip64Threshold;
        int zip64Extra = zip64 ? 20 : 0;
        long unpadded = offset + 30 + nameBytes.Length + zip64Extra + 4;
        int padding = (int)((Alignment - unpadded % Alignment) % Alignment);

        var header = new byte[30 + nameBytes.Length + zip64Extra + 4 + padding];
        var span = header.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], zip64 ? VersionZip64 : VersionStored);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], DosDate1980);
        // CRC-32 at 14 is patched once the data has streamed through.
        BinaryPrimitives.WriteUInt32LittleEndian(span[18..], zip64 ? uint.MaxValue : (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(span[22..], zip64 ? uint.MaxValue : (uint)size);
        BinaryPrimitives.WriteUInt16LittleEndian(span[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(span[28..], (ushort)(zip64Extra + 4 + padding));
        nameBytes.CopyTo(span[30..]);
        var extra = span[(30 + nameBytes.Length)..];
        if (zip64)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(extra, Zip64ExtraId);
            BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], 16);
            BinaryPrimitives.WriteInt64LittleEndian(extra[4..], size);
            BinaryPrimitives.WriteInt64LittleEndian(extra[12..], size);
            extra = extra[20..];
        }
        BinaryPrimitives.WriteUInt16LittleEndian(extra, PaddingExtraId);
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)padding);
        output.Write(header);

        var data = new CrcStream(output);
        writeData(data);
        if (data.Written != size)
        {
            throw new InvalidOperationException($"Zip record '{name}' was declared as {size} bytes but {data.Written} were written");
        }
        long end = output.Position;
        output.Position = offset + 14;
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, data.Crc);
        output.Write(crc);
        output.Position = end;
        records.Add((nameBytes, data.Crc, size, offset));
    }

    /// <summary>Writes the central directory and end records; the zip is complete afterwards.</summary>
    public void Finish()
    {
        long directoryOffset = output.Position;
        foreach (var (name, crc, size, offset) in records)
        {
            bool bigSize = size >= zip64Threshold;
            bool bigOffset = offset >= zip64Threshold;
            int zip64Extra = bigSize || bigOffset ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
            var entry = new byte[46 + name.Length + zip64Extra];
            var span = entry.AsSpan();
            ushort version = zip64Extra > 0 ? VersionZip64 : VersionStored;
            BinaryPrimitives.WriteUInt32LittleEndian(span, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(span[4..], version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[6..], version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[14..], DosDate1980);
            BinaryPrimitives.WriteUInt32LittleEndian(span[16..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(span[20..], bigSize ? uint.MaxValue : (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], bigSize ? uint.MaxValue : (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(span[28..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(span[30..], (ushort)zip64Extra);
            BinaryPrimitives.WriteUInt32LittleEndian(span[42..], bigOffset ? uint.MaxValue : (uint)offset);
            name.CopyTo(span[46..]);
            if (zip64Extra > 0)
            {
                // Only the fields whose 32-bit slots hold 0xFFFFFFFF appear, in this order.
                var extra = span[(46 + name.Length)..];
                BinaryPrimitives.WriteUInt16LittleEndian(extra, Zip64ExtraId);
                BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)(zip64Extra - 4));
                extra = extra[4..];
                if (bigSize)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(extra, size);
                    BinaryPrimitives.WriteInt64LittleEndian(extra[8..], size);
                    extra = extra[16..];
                }
                if (bigOffset)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(extra, offset);
                }
            }
            output.Write(entry);
        }
        long directorySize = output.Position - directoryOffset;
        bool zip64End = records.Count >= ushort.MaxValue || directoryOffset >= zip64Threshold || directorySize >= zip64Threshold;
        if (zip64End)
        {
            WriteZip64End(directoryOffset, directorySize);
        }
        var end = new byte[22];
        var endSpan = end.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(endSpan, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(endSpan[8..], zip64End ? ushort.MaxValue : (ushort)records.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(endSpan[10..], zip64End ? ushort.MaxValue : (ushort)records.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(endSpan[12..], zip64End ? uint.MaxValue : (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(endSpan[16..], zip64End ? uint.MaxValue : (uint)directoryOffset);
        output.Write(end);
    }

    private void WriteZip64End(long directoryOffset, long directorySize)
    {
        long recordOffset = output.Position;
        var record = new byte[56 + 20];
        var span = record.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, 0x06064b50);
        BinaryPrimitives.WriteInt64LittleEndian(span[4..], 44);   // the record's size after this field
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], VersionZip64);
        BinaryPrimitives.WriteUInt16LittleEndian(span[14..], VersionZip64);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], records.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[32..], records.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[40..], directorySize);
        BinaryPrimitives.WriteInt64LittleEndian(span[48..], directoryOffset);
        // The locator: on disk 0, the record at recordOffset, one disk in all.
        var locator = span[56..];
        BinaryPrimitives.WriteUInt32LittleEndian(locator, 0x07064b50);
        BinaryPrimitives.WriteInt64LittleEndian(locator[8..], recordOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(locator[16..], 1);
        output.Write(record);
    }

    /// <summary>Passes writes through to the zip, counting bytes and computing their CRC-32.</summary>
    private sealed class CrcStream(Stream inner) : Stream
    {
        private readonly Crc32 crc = new();

        public long Written { get; private set; }

        public uint Crc => crc.GetCurrentHashAsUInt32();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => Written;

        public override long Position { get => Written; set => throw new NotSupportedException(); }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            crc.Append(buffer);
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
