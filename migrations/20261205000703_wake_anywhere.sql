-- A wake that may go to another host when its own is full (`wake
-- --anywhere`): its disk is then committed and streamed there.
ALTER TABLE vessels ADD COLUMN wake_anywhere boolean NOT NULL DEFAULT false;
